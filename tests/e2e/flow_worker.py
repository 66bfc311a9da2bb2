"""A worker process with short leases: ``python flow_worker.py URL``."""

from __future__ import annotations

import sys

from omniq.core import OmniQ


def main() -> None:
    with OmniQ(sys.argv[1], lease_seconds=2.0, retry_delay=0.01) as oq:
        print("worker ready", flush=True)
        oq.run_worker_sync(queues=["default"], concurrency=4, worker_type="thread")


if __name__ == "__main__":
    main()
