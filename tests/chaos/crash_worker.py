"""A worker that dies by SIGKILL right after a chosen storage step returned:
``python crash_worker.py CONFIG_JSON``.

``crash_after`` names the task store's step (``finish``, ``cancel`` or ``expire``; the
first also covers a bare ``complete`` inside it, the last two
``cancel_with_results``/``expire_with_results``, whichever the queue calls); once a
call that ended some task returns the state change, the process kills itself before
anything else happens (no event, no result write of its own).
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
        step = cfg["crash_after"]
        _die_after(oq.queue.tasks, step)
        if step == "finish":
            # The default ``complete_with_results`` (a worker's failure, the cascade's
            # results after the state change) calls the plain ``complete`` first.
            _die_after(oq.queue.tasks, "complete")
        if step in ("cancel", "expire"):
            # The default ``*_with_results`` calls the plain step first (then the results
            # are written after it: the kill lands in between); an atomic override does
            # both in one call, after which the kill lands.
            _die_after(oq.queue.tasks, f"{step}_with_results")
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
