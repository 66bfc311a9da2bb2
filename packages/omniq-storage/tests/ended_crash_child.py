"""Child process of ``test_ended_crash_points``: ``python ended_crash_child.py CONFIG``.

Opens the store, ends tasks with ``cancel_with_results`` (the task id given),
``expire_with_results`` (the TTL sweep), a failing ``finish`` with a record (a worker
claims the task id given from its queue) or ``enqueue_with_results`` (a task
``child_id`` depending on the task id given, which ended already, so it is stored
cancelled), its own result store in the record, and SIGKILLs itself at the first point
after the state change: on NATS at the ``ended`` crash point (the records written,
nothing else yet), or ``resolve`` for the finish (the failed task's record written, its
dependents not yet); as soon as a bare ``cancel``, ``expire`` or ``complete`` returns,
and for the enqueue on entry to the result store's ``put`` (a store writing the results
in a later step dies before it); else as soon as the call returns (its one transaction
or script is the whole step).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from typing import Any

from omniq.models import ErrorInfo, Task, TaskResult, TaskStatus, now
from omniq.storage import Completion, CompletionReport, ResultRecord, open_storage
from omniq.storage.testing.helpers import NOOP


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _hook(point: str) -> None:
    if point in ("ended", "resolve"):
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


def _die_before_put(results: Any) -> None:
    """Make ``results.put`` die on entry: a store writing the results of the tasks an
    enqueue stored cancelled after its step dies before writing them."""

    async def wrapped(*args: Any, **kwargs: Any) -> None:
        _die()

    results.put = wrapped


async def main(cfg: dict[str, Any]) -> None:
    async with open_storage(cfg["url"]) as be:
        q, results = be.tasks, be.results
        assert q is not None and results is not None
        if hasattr(q, "crash_hook"):
            q.crash_hook = _hook
        _die_after(q, "cancel")
        _die_after(q, "expire")
        _die_after(q, "complete")
        record = ResultRecord(results, retention=cfg["retention"], reason=cfg["reason"])
        if cfg["how"] == "enqueue":
            _die_before_put(results)
            born = Task(id=cfg["child_id"], func=NOOP, queue="nobody", depends_on=(cfg["task_id"],))
            [got] = await q.enqueue_with_results([born], record)
            if got.status is TaskStatus.CANCELLED:
                _die()
            report = CompletionReport()
        elif cfg["how"] == "cancel":
            report = await q.cancel_with_results([cfg["task_id"]], record)
        elif cfg["how"] == "finish":
            [c] = await q.claim([cfg["queue"]], "crash-worker", lease=60.0)
            assert c.task.id == cfg["task_id"]
            t = now()
            failed = TaskResult(
                task_id=c.task.id,
                status=TaskStatus.ERROR,
                error=ErrorInfo(type="RuntimeError", message="boom"),
                attempts=c.task.attempt,
                finished_at=t,
                expires_at=record.expires(t),
                queue=c.task.queue,
            )
            report = await q.finish(
                [Completion(c.task.id, c.token, TaskStatus.ERROR)],
                [failed],
                results,
                lease=60.0,
                record=record,
            )
        else:
            report = await q.expire_with_results(record)
        if report.done:
            _die()
    print("nothing ended", flush=True)


if __name__ == "__main__":
    asyncio.run(main(json.loads(sys.argv[1])))
