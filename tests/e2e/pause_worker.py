"""A worker process on the queues ``default`` and ``probe``:
``python pause_worker.py URL``."""

from __future__ import annotations

import sys

from omniq.core import OmniQ


def main() -> None:
    with OmniQ(sys.argv[1], lease_seconds=5.0, retry_delay=0.01) as oq:
        print("worker ready", flush=True)
        oq.run_worker_sync(queues=["default", "probe"], concurrency=2)


if __name__ == "__main__":
    main()
