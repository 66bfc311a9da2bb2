"""A worker process for the end-to-end tests: ``python worker_main.py URL LEASE [burst]``."""

from __future__ import annotations

import sys

from omniq.core import OmniQ


def main() -> None:
    url, lease = sys.argv[1], float(sys.argv[2])
    burst = len(sys.argv) > 3 and sys.argv[3] == "burst"
    with OmniQ(url, lease_seconds=lease, retry_delay=0.01) as oq:
        print("worker ready", flush=True)
        oq.run_worker_sync(concurrency=2, burst=burst)


if __name__ == "__main__":
    main()
