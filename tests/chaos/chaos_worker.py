"""One chaos-suite worker process: ``python chaos_worker.py CONFIG_JSON``.

The config names the task store, result and event stores, the lease, the pool size and
options. SIGTERM/SIGINT stop the worker gracefully (running tasks get the shutdown
grace, the rest is handed back); SIGKILL is what the chaos tests send otherwise.
Started the way ``omniq worker`` would run a pool: ``OmniQ.worker()`` in the foreground.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import sys
from typing import Any

from omniq.core import OmniQ


async def main(cfg: dict[str, Any]) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    oq = OmniQ(
        cfg["url"],
        cfg.get("results") or cfg["url"],
        cfg.get("events"),
        lease_seconds=cfg["lease"],
        retry_delay=cfg.get("retry_delay", 0.01),
    )
    async with oq, oq.worker(concurrency=cfg.get("concurrency", 8), **cfg.get("pool", {})):
        print("worker ready", flush=True)
        await stop.wait()
    print("worker stopped", flush=True)


if __name__ == "__main__":
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s"
    )
    asyncio.run(main(json.loads(sys.argv[1])))
