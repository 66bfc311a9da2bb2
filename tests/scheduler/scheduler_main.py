"""A scheduler process for the multi-process tests: ``python scheduler_main.py URL``.

Runs ``OmniQ.run_scheduler_sync()`` (the same path as ``omniq scheduler``) until SIGTERM.
"""

from __future__ import annotations

import sys

from omniq.core import OmniQ


def main() -> None:
    url = sys.argv[1]
    with OmniQ(url, event_storage=url) as oq:
        oq.open_sync()
        print("scheduler ready", flush=True)
        stats = oq.run_scheduler_sync()
        print(f"scheduler stopped: {stats}", flush=True)


if __name__ == "__main__":
    main()
