"""What every engine does with a stored task record that does not decode.

One corrupt record never holds its neighbours:

- ``claim`` decodes the claimed records one by one. The valid ones are returned; each
  corrupt one is *quarantined*: ended in ``error`` with a result whose error is
  ``CorruptRecordError``, so it is a dead letter like any task that failed for good.
  SQLite, PostgreSQL and Redis do it through their own fenced ``finish`` (``quarantine``
  here: one extra round trip, only when a claim met one; the stored bytes are kept);
  NATS replaces the record with an error stand-in at the revision it read, and the file
  journal does so while replaying (``_backends/nats``, ``_backends/file``).
- Reads (``get``, ``list``, a completion's cancelled dependents) show a corrupt record
  in a terminal status as a *stand-in*: a task with its id, queue, status and attempt,
  ``func`` set to ``CORRUPT_FUNC`` and ``metadata[CORRUPT_KEY]`` holding the reason. A
  corrupt record that is not terminal yet is skipped (``get`` gives None) and logged as
  a warning naming its id; its next claim quarantines it. ``count``/``counts`` do not
  decode where the engine counts rows or index entries, so they count it there.
- A stored result that does not decode reads as missing (``read_result``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import NamedTuple

from omniq.models import (
    CorruptRecordError,
    ErrorInfo,
    Task,
    TaskCancelledError,
    TaskResult,
    TaskStatus,
    now,
)

from ._codec import decode_result, decode_task
from ._interfaces import Completion, ResultStorage, TaskQueueStorage

__all__ = [
    "CORRUPT_FUNC",
    "CORRUPT_KEY",
    "Corrupt",
    "corrupt_result",
    "log",
    "quarantine",
    "read_result",
    "read_task",
    "stand_in",
    "try_task",
]

log = logging.getLogger("omniq.storage")

CORRUPT_FUNC = "omniq.storage:corrupt_record"
"""The ``func`` of a stand-in task: not importable, so a requeued stand-in fails again."""
CORRUPT_KEY = "omniq.corrupt"
"""The ``metadata`` key of a stand-in task: why its record does not decode."""


class Corrupt(NamedTuple):
    """A claimed record that does not decode: what ``quarantine`` needs to end it."""

    task_id: str
    token: str
    reason: str
    attempt: int = 0
    queue: str | None = None


def try_task(raw: bytes) -> Task | CorruptRecordError:
    """The decoded task, or the error saying why the bytes are not one."""
    try:
        return decode_task(raw)
    except CorruptRecordError as exc:
        return exc


def stand_in(
    task_id: str, queue: str | None, status: TaskStatus | str, attempt: int, reason: str
) -> Task:
    """A task standing for a corrupt record in reads: its id, queue, status and attempt,
    nothing runnable, the reason in ``metadata[CORRUPT_KEY]``."""
    return Task(
        func=CORRUPT_FUNC,
        id=task_id,
        queue=queue or "default",
        status=TaskStatus(status),
        attempt=attempt,
        metadata={CORRUPT_KEY: reason},
    )


def read_task(
    raw: bytes,
    task_id: str,
    queue: str | None,
    status: TaskStatus | str,
    attempt: int,
    *,
    always: bool = False,
) -> Task | None:
    """Decode a stored task for a read: a stand-in when it does not decode and its status
    is terminal (or ``always``: enqueue's "this id is taken"), else None (skipped) with a
    warning naming the id."""
    got = try_task(raw)
    if isinstance(got, Task):
        return got
    st = TaskStatus(status)
    if always or st.is_terminal:
        return stand_in(task_id, queue, st, attempt, str(got))
    log.warning("skipping corrupt task record %s (%s): %s", task_id, st.value, got)
    return None


def corrupt_result(bad: Corrupt, at: float | None = None) -> TaskResult:
    """The dead-letter result of a quarantined record."""
    t = now() if at is None else at
    return TaskResult(
        task_id=bad.task_id,
        status=TaskStatus.ERROR,
        error=ErrorInfo.from_exception(CorruptRecordError(bad.reason)),
        attempts=bad.attempt,
        started_at=t,
        finished_at=t,
        queue=bad.queue,
    )


async def quarantine(
    store: TaskQueueStorage,
    results: ResultStorage | None,
    bad: Sequence[Corrupt],
    *,
    lease: float,
) -> None:
    """End claimed corrupt records in ``error`` with their results (fenced by the
    claim's token, dependents resolved as for any failure) and log each one."""
    if not bad:
        return
    for b in bad:
        log.warning("quarantined corrupt task record %s: %s", b.task_id, b.reason)
    t = now()
    report = await store.finish(
        [Completion(b.task_id, b.token, TaskStatus.ERROR) for b in bad],
        [corrupt_result(b, t) for b in bad],
        results,
        lease=lease,
    )
    if report.cancelled and results is not None:
        # What the queue layer records for any completion's cancelled dependents.
        why = ErrorInfo.from_exception(TaskCancelledError("a dependency did not succeed"))
        await results.put(
            [
                TaskResult(
                    task_id=c.id,
                    status=TaskStatus.CANCELLED,
                    error=why,
                    attempts=c.attempt,
                    finished_at=t,
                    queue=c.queue,
                )
                for c in report.cancelled
            ]
        )


def read_result(raw: bytes, task_id: str) -> TaskResult | None:
    """Decode a stored result for a read; one that does not decode reads as missing
    (None), with a warning naming the task id, so it never fails the other reads."""
    try:
        return decode_result(raw)
    except CorruptRecordError as exc:
        log.warning("skipping corrupt result record %s: %s", task_id, exc)
        return None
