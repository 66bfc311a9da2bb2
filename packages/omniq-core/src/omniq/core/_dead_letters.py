"""Dead-letter operations of the ``OmniQ`` facade (async + ``_sync``).

A dead letter is a task that ended in ``error`` for good: its retries were used up, or
its worker died during every attempt (``WorkerCrashedError``, the poison path). They
stay in the task store until purged; ``requeue`` gives them a fresh set of attempts.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import msgspec

from omniq.events import enqueued_event
from omniq.models import Task, TaskResult, TaskStatus, now, validate_task_id

from ._session import Session

__all__ = ["DeadLetter", "DeadLetterOps"]

T = TypeVar("T")


class DeadLetter(msgspec.Struct, frozen=True):
    """A task that failed for good, with its last result (the error) when stored."""

    task: Task
    result: TaskResult | None

    @property
    def error(self) -> str:
        """``Type: message`` of the final error ('' when the result is gone)."""
        e = self.result.error if self.result is not None else None
        return f"{e.type}: {e.message}" if e is not None else ""


class DeadLetterOps:
    """List, inspect, requeue and purge dead letters (tasks in ``error``)."""

    if TYPE_CHECKING:

        async def _call(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T: ...

        def _call_sync(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T: ...

    async def dead_letters(
        self, queue: str | None = None, *, limit: int = 100, offset: int = 0
    ) -> list[DeadLetter]:
        """Dead letters (optionally of one queue), oldest first, with their results."""
        return await self._call(_list, queue, limit, offset)

    def dead_letters_sync(
        self, queue: str | None = None, *, limit: int = 100, offset: int = 0
    ) -> list[DeadLetter]:
        return self._call_sync(_list, queue, limit, offset)

    async def dead_letter(self, task_id: str) -> DeadLetter | None:
        """One dead letter (None if the task is unknown or not in ``error``)."""
        return await self._call(_show, task_id)

    def dead_letter_sync(self, task_id: str) -> DeadLetter | None:
        return self._call_sync(_show, task_id)

    async def requeue(self, task_ids: str | Sequence[str]) -> list[str]:
        """Put dead letters back to pending with attempt 0 (same ids); their old error
        results are deleted so ``get_result(wait=True)`` waits for the new run. Returns
        the ids requeued; ids not in ``error`` are skipped."""
        ids = [task_ids] if isinstance(task_ids, str) else list(task_ids)
        return await self._call(_requeue, ids)

    def requeue_sync(self, task_ids: str | Sequence[str]) -> list[str]:
        ids = [task_ids] if isinstance(task_ids, str) else list(task_ids)
        return self._call_sync(_requeue, ids)

    async def purge_dead_letters(self, *, finished_before: float | None = None) -> int:
        """Delete dead letters (that failed before ``finished_before``, default: all)
        and their results; returns how many tasks were deleted."""
        return await self._call(_purge, finished_before)

    def purge_dead_letters_sync(self, *, finished_before: float | None = None) -> int:
        return self._call_sync(_purge, finished_before)


async def _pair(session: Session, tasks: Sequence[Task]) -> list[DeadLetter]:
    q = session.queue
    results: list[TaskResult | None] = (
        list(await q.results.get([t.id for t in tasks]))
        if q.results is not None and tasks
        else [None] * len(tasks)
    )
    return [DeadLetter(t, r) for t, r in zip(tasks, results, strict=True)]


async def _list(session: Session, queue: str | None, limit: int, offset: int) -> list[DeadLetter]:
    tasks = await session.queue.tasks.list(
        queue=queue, status=TaskStatus.ERROR, limit=limit, offset=offset
    )
    return await _pair(session, tasks)


async def _show(session: Session, task_id: str) -> DeadLetter | None:
    task = await session.queue.tasks.get_one(validate_task_id(task_id))
    if task is None or task.status is not TaskStatus.ERROR:
        return None
    return (await _pair(session, [task]))[0]


async def _requeue(session: Session, ids: list[str]) -> list[str]:
    q = session.queue
    done = await q.tasks.requeue([validate_task_id(i) for i in ids])
    if done and q.results is not None:
        await q.results.delete(done)
    if done and q.events is not None and q.events.enabled:
        tasks = [t for t in await q.tasks.get(done) if t is not None]
        q._log([enqueued_event(t, requeued=True) for t in tasks])
    return done


async def _purge(session: Session, finished_before: float | None) -> int:
    q = session.queue
    before = finished_before if finished_before is not None else now() + 1.0
    if q.results is not None:
        doomed: list[str] = []
        seen = 0
        while True:
            page = await q.tasks.list(status=TaskStatus.ERROR, limit=500, offset=seen)
            seen += len(page)
            results = await q.results.get([t.id for t in page])
            doomed += [
                t.id
                for t, r in zip(page, results, strict=True)
                if r is None or r.finished_at is None or r.finished_at < before
            ]
            if len(page) < 500:
                break
        # Results first: a crash in between leaves dead letters without results (still
        # listed), never results without tasks.
        await q.results.delete(doomed)
    return await q.tasks.purge(finished_before=before, status=TaskStatus.ERROR)
