"""Child process of ``test_ended_crash_points``: ``python ended_crash_child.py CONFIG``.

Opens the store, ends tasks with ``cancel_with_results`` (the task id given) or
``expire_with_results`` (the TTL sweep), its own result store in the record, and
SIGKILLs itself at the first point after the state change: on NATS at the ``ended``
crash point (the records written, nothing else yet), elsewhere as soon as the call
returns (its one transaction or script is the whole step).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from typing import Any

from omniq.storage import ResultRecord, open_storage


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _hook(point: str) -> None:
    if point == "ended":
        _die()


async def main(cfg: dict[str, Any]) -> None:
    async with open_storage(cfg["url"]) as be:
        q, results = be.tasks, be.results
        assert q is not None and results is not None
        if hasattr(q, "crash_hook"):
            q.crash_hook = _hook
        record = ResultRecord(results, retention=cfg["retention"], reason=cfg["reason"])
        if cfg["how"] == "cancel":
            report = await q.cancel_with_results([cfg["task_id"]], record)
        else:
            report = await q.expire_with_results(record)
        if report.done:
            _die()
    print("nothing ended", flush=True)


if __name__ == "__main__":
    asyncio.run(main(json.loads(sys.argv[1])))
