"""Inline mode and ``drain``: run the tasks that are due now, in this process, through
the same worker pool, serializers and stores a real worker uses.

``drain()`` alternates scheduler passes (schedules that fell due fire) with burst runs
of an in-process worker pool until a pass finds nothing to run. With
``OmniQ(inline=True)`` every enqueue is followed by such a drain, and a retry's backoff
is passed by moving OmniQ's clock (``omniq.models.skip_ahead``) rather than by waiting.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

import msgspec

from omniq.models import MisfirePolicy, Task, TaskFailedError, TaskStatus, WorkerType, now
from omniq.models import skip_ahead as _skip_ahead
from omniq.workers import PoolStats

from ._session import Session
from ._worker import run_pool

__all__ = ["InlineOps"]

T = TypeVar("T")

_PAGE = 500


class InlineOps:
    """``drain``/``drain_sync`` and the enqueue path of inline mode (mixed into OmniQ)."""

    inline: bool = False
    """Run each task at enqueue (see ``OmniQ``)."""

    _draining: bool = False

    if TYPE_CHECKING:

        async def _call(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T: ...

        def _call_sync(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T: ...

        def _defaults(self) -> tuple[MisfirePolicy | str, float]: ...

    async def drain(self, *, queues: list[str] | None = None) -> PoolStats:
        """Run everything due now, in this process, and return the counters: fire the
        schedules that are due, run the due tasks (and what they enqueue, their
        dependents and follow-ups) until nothing is left to run. Tasks whose eta or
        retry backoff lies ahead stay pending: move the clock (``ManualClock.advance``)
        and drain again. ``queues`` limits the run to those queues (default: every queue
        holding pending tasks). Meant for tests; a worker does the same continuously."""
        return await self._call(self._drain_on_home, queues, False)

    def drain_sync(self, *, queues: list[str] | None = None) -> PoolStats:
        """Blocking ``drain``."""
        return self._call_sync(self._drain_on_home, queues, False)

    async def _drain_on_home(
        self, session: Session, queues: list[str] | None, settle_retries: bool
    ) -> PoolStats:
        total = PoolStats()
        if self._draining:  # enqueued by a task the running drain runs: it picks it up
            return total
        self._draining = True
        try:
            while True:
                fired = await self._fire_schedules(session)
                names = queues or await _pending_queues(session)
                stats = PoolStats()
                if names:
                    opts = _pool_options(session, names)
                    stats = await run_pool(session.queue, opts, burst=True)
                    _add(total, stats)
                if stats.claimed or fired:
                    continue
                if settle_retries:
                    due = await _next_retry(session)
                    if due is not None and due > now():
                        _skip_ahead(due - now())
                        continue
                return total
        finally:
            self._draining = False

    async def _fire_schedules(self, session: Session) -> int:
        if session.task_backend.schedules is None:
            return 0
        report = await session.schedule_manager(*self._defaults()).tick()
        return len(report.fired) + len(report.recovered)

    async def _inline_enqueue(self, session: Session, tasks: list[Task]) -> list[Task]:
        """Store ``tasks``, run them (and everything they lead to) to the end, and return
        them as they ended; raise ``TaskFailedError`` for the first that ended in error."""
        stored = await session.queue.enqueue_many(tasks, validated=True)
        if self._draining:
            return stored
        await self._drain_on_home(session, None, True)
        out: list[Task] = []
        for task in stored:
            current = await session.queue.get_task(task.id)
            out.append(current if current is not None else task)
        for task in out:
            if task.status is TaskStatus.ERROR:
                result = await session.queue.get_result(task.id)
                if result is not None and result.error is not None:
                    raise TaskFailedError(task.id, task.func, result.error)
        return out


def _pool_options(session: Session, queues: list[str] | None) -> dict[str, Any]:
    """One task at a time, in this process (a process or gevent default becomes threads),
    without a worker registry entry."""
    default = WorkerType(session.queue.settings.default_worker)
    worker = default if default in (WorkerType.ASYNC, WorkerType.THREAD) else WorkerType.THREAD
    return {
        "queues": queues,
        "concurrency": 1,
        "worker_type": worker,
        "worker_registry": False,
    }


async def _pending_queues(session: Session) -> list[str]:
    """The queues holding pending tasks (a drain without ``queues`` runs all of them)."""
    counts = await session.queue.counts()
    return sorted({q for (q, status), n in counts.items() if status is TaskStatus.PENDING and n})


async def _next_retry(session: Session) -> float | None:
    """The earliest eta of a pending task waiting out a retry backoff."""
    earliest: float | None = None
    offset = 0
    while True:
        page = await session.queue.list_tasks(status=TaskStatus.PENDING, limit=_PAGE, offset=offset)
        for task in page:
            if task.attempt > 0 and task.eta is not None:
                earliest = task.eta if earliest is None else min(earliest, task.eta)
        if len(page) < _PAGE:
            return earliest
        offset += _PAGE


def _add(total: PoolStats, stats: PoolStats) -> None:
    for field in msgspec.structs.fields(total):
        name = field.name
        setattr(total, name, getattr(total, name) + getattr(stats, name))
