"""Child process of ``test_ended_crash_points``: ``python ended_crash_child.py CONFIG``.

Opens the store, ends tasks with ``cancel_with_results`` (the task id given) or
``expire_with_results`` (the TTL sweep), its own result store in the record, and
SIGKILLs itself at the first point after the state change: on NATS at the ``ended``
crash point (the records written, nothing else yet); as soon as a bare ``cancel`` or
``expire`` returns (a store writing the results in a later step dies before it);
else as soon as the call returns (its one transaction or script is the whole step).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from typing import Any

from omniq.storage import CompletionReport, ResultRecord, open_storage


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _hook(point: str) -> None:
    if point == "ended":
        _die()


def _die_after(store: Any, name: str) -> None:
    """Make ``store.<name>`` (the bare state change) die as soon as it ended a task: a
    store that stores the results in a later step dies before that step."""
    original = getattr(store, name)

    async def wrapped(*args: Any, **kwargs: Any) -> CompletionReport:
        report: CompletionReport = await original(*args, **kwargs)
        if report.done:
            _die()
        return report

    setattr(store, name, wrapped)


async def main(cfg: dict[str, Any]) -> None:
    async with open_storage(cfg["url"]) as be:
        q, results = be.tasks, be.results
        assert q is not None and results is not None
        if hasattr(q, "crash_hook"):
            q.crash_hook = _hook
        _die_after(q, "cancel")
        _die_after(q, "expire")
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
