"""``python -m omniq``: the ``omniq`` command line (``omniq.core.cli``)."""

from omniq.core.cli import main

if __name__ == "__main__":
    main()
