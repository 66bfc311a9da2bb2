"""A worker that dies by SIGKILL right after a chosen storage step returned:
``python crash_worker.py CONFIG_JSON``.

``crash_after`` names the task store's method (``finish``, ``cancel`` or ``expire``);
once a call to it that ended some task returns, the process kills itself before
anything else happens (no event, no result write, no follow-up enqueue of its own).
With ``crash_after`` ``cancel``/``expire`` it calls that step itself first (a task id
to cancel, or the TTL sweep) instead of running a worker.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from typing import Any

from omniq.core import OmniQ
from omniq.storage import CompletionReport


def _die_after(store: Any, name: str) -> None:
    original = getattr(store, name)

    async def wrapped(*args: Any, **kwargs: Any) -> CompletionReport:
        report: CompletionReport = await original(*args, **kwargs)
        if report.done:
            os.kill(os.getpid(), signal.SIGKILL)
        return report

    setattr(store, name, wrapped)


async def main(cfg: dict[str, Any]) -> None:
    oq = OmniQ(cfg["url"], cfg["url"], lease_seconds=cfg.get("lease", 2.0))
    async with oq:
        _die_after(oq.queue.tasks, cfg["crash_after"])
        if cfg["crash_after"] == "cancel":
            await oq.cancel(cfg["task_id"])
        elif cfg["crash_after"] == "expire":
            await oq.queue.ttl.run_once()
        else:
            async with oq.worker(concurrency=1):
                print("worker ready", flush=True)
                await asyncio.Event().wait()
    print("survived", flush=True)


if __name__ == "__main__":
    asyncio.run(main(json.loads(sys.argv[1])))
