"""TaskQueueStorage and ScheduleStorage over a ``QueueState`` (memory and file backends).

A backend supplies ``run(fn)``: it calls ``fn(state, now)`` with exclusive access to
an up-to-date state and persists what ``fn`` changed (the memory backend just takes a
lock; the file backend also syncs and appends its journal, off the event loop).
A backend that holds a result store gives ``cancel``/``expire`` its ``LockedResults``
(``locked_results``): their results are then written inside ``fn``, in the same step.
"""

from __future__ import annotations

import builtins
import time
from collections.abc import Awaitable, Callable, Hashable, Sequence
from typing import Protocol, TypeVar

from omniq.models import (
    ClaimedTask,
    LimitInfo,
    Schedule,
    ScheduleState,
    Task,
    TaskResult,
    TaskStatus,
)

from ._interfaces import (
    Completion,
    CompletionReport,
    DependencyPolicy,
    LeaseRef,
    ResultRecord,
    ResultStorage,
    RetryRequest,
    ScheduleRun,
    ScheduleStorage,
    TaskQueueStorage,
)
from ._state import QueueState
from ._wake import Wake, wait_for_work

__all__ = ["LockedResults", "Runner", "StateSchedules", "StateTasks", "cascaded"]

T = TypeVar("T")
Runner = Callable[[Callable[[QueueState, float], T]], Awaitable[T]]


class LockedResults(Protocol):
    """A result store a state backend writes while it holds its state lock."""

    @property
    def wake(self) -> Wake: ...

    def store(self, results: Sequence[TaskResult]) -> None:
        """Write ``results`` now, synchronously, without waking waiters."""


def cascaded(
    here: LockedResults, record: ResultRecord, report: CompletionReport, t: float
) -> list[str]:
    """Store, under the state lock, the ``cancelled`` results of the dependents a
    completion cancelled (``report.cancelled``); returns their ids (to wake waiters)."""
    if not report.cancelled:
        return []
    results = record.results((), TaskStatus.CANCELLED, report.cancelled, t)
    here.store(results)
    return [r.task_id for r in results]


class StateTasks(TaskQueueStorage):
    """The task queue contract over a state runner, woken by in-process notification
    (and by ``poll``, a cheap probe of changes made by other processes, if given)."""

    def __init__(
        self,
        run: Callable[[Callable[[QueueState, float], object]], Awaitable[object]],
        *,
        poll: Callable[[], Awaitable[Hashable]] | None = None,
        max_poll: float = 0.1,
    ) -> None:
        self._run_any = run
        self._poll = poll
        self._max_poll = max_poll
        self.wake = Wake()

    async def _run(self, fn: Callable[[QueueState, float], T]) -> T:
        return await self._run_any(fn)  # type: ignore[return-value]

    async def enqueue(
        self, tasks: Sequence[Task], *, dependency_policy: DependencyPolicy = "cancel"
    ) -> list[Task]:
        batch = list(tasks)
        self.payload_limit.check_tasks(batch)
        out = await self._run(lambda s, t: s.enqueue(batch, t, dependency_policy))
        self.wake.notify()
        return out

    async def enqueue_with_results(
        self,
        tasks: Sequence[Task],
        record: ResultRecord,
        *,
        dependency_policy: DependencyPolicy = "cancel",
    ) -> list[Task]:
        """``enqueue``; a task stored already cancelled gets its result inside the step
        when this backend holds the result store, else right after (the default)."""
        here = self.locked_results(record.result_store)
        if here is None:
            return await super().enqueue_with_results(
                tasks, record, dependency_policy=dependency_policy
            )
        batch = list(tasks)
        self.payload_limit.check_tasks(batch)
        written: list[str] = []

        def run(s: QueueState, t: float) -> list[Task]:
            fresh = {task.id for task in batch if task.id not in s.recs}
            out = s.enqueue(batch, t, dependency_policy)
            born = [g for g in out if g.id in fresh and g.status is TaskStatus.CANCELLED]
            if born:
                results = record.results((), TaskStatus.CANCELLED, born, t)
                here.store(results)
                written.extend(r.task_id for r in results)
            return out

        out = await self._run(run)
        if written:
            here.wake.notify(written)
        self.wake.notify()
        return out

    async def claim(
        self, queues: Sequence[str], worker_id: str, *, limit: int = 1, lease: float = 30.0
    ) -> list[ClaimedTask]:
        qs = list(queues)

        def run(s: QueueState, t: float) -> tuple[list[ClaimedTask], list[str], float]:
            at = time.monotonic()
            return s.claim(qs, worker_id, limit, lease, t), s.limited, at

        got, self.limited, at = await self._run(run)
        self.admitted = at if any(c.task.rate_limit is not None for c in got) else None
        return got

    async def claim_standby(
        self, queues: Sequence[str], worker_id: str, *, behind: ClaimedTask, lease: float = 30.0
    ) -> ClaimedTask | None:
        """A task to run in the concurrency slot of ``behind`` (a running claim of this
        worker under a cap without a rate) once that run ended, claimed now so it
        starts the moment that run ends: the key's next ready task, its record running
        with ``standby_of`` naming ``behind``'s claim, so while both run they take one
        slot. The caller renews its lease until it runs it, and releases it when it
        will not. None when no task of that key is ready, or ``behind`` has ended or
        has a standby already."""
        qs = list(queues)
        ref = (behind.task.id, behind.token)
        return await self._run(lambda s, t: s.claim_standby(qs, worker_id, ref, lease, t))

    async def renew(self, leases: Sequence[LeaseRef], lease: float) -> list[str]:
        refs = list(leases)
        return await self._run(lambda s, t: s.renew(refs, lease, t))

    async def complete(
        self, completions: Sequence[Completion], *, dependency_policy: DependencyPolicy = "cancel"
    ) -> CompletionReport:
        items = list(completions)
        report = await self._run(lambda s, t: s.complete(items, dependency_policy, t))
        if report.released:
            self.wake.notify()
        return report

    async def retry(self, requests: Sequence[RetryRequest]) -> list[str]:
        items = list(requests)
        stale = await self._run(lambda s, t: s.retry(items, t))
        self.wake.notify()
        return stale

    async def defer(self, requests: Sequence[RetryRequest]) -> list[str]:
        items = list(requests)
        stale = await self._run(lambda s, t: s.release(items, t, eta=True))
        self.wake.notify()
        return stale

    async def release(self, leases: Sequence[LeaseRef]) -> list[str]:
        refs = list(leases)
        stale = await self._run(lambda s, t: s.release(refs, t))
        self.wake.notify()
        return stale

    async def complete_with_results(
        self,
        completions: Sequence[Completion],
        record: ResultRecord,
        *,
        dependency_policy: DependencyPolicy = "cancel",
    ) -> CompletionReport:
        """``complete``; the dependents it cancelled get their results inside the step
        when this backend holds the result store, else right after (the default)."""
        here = self.locked_results(record.result_store)
        if here is None:
            return await super().complete_with_results(
                completions, record, dependency_policy=dependency_policy
            )
        items = list(completions)
        written: list[str] = []

        def run(s: QueueState, t: float) -> CompletionReport:
            report = s.complete(items, dependency_policy, t)
            written.extend(cascaded(here, record, report, t))
            return report

        report = await self._run(run)
        if written:
            here.wake.notify(written)
        if report.released:
            self.wake.notify()
        return report

    def locked_results(self, store: ResultStorage) -> LockedResults | None:
        """``store`` as written under the state lock, when this backend holds it (None:
        another engine's, written after the step). The default holds none."""
        return None

    async def _end(
        self,
        step: Callable[[QueueState, float], CompletionReport],
        record: ResultRecord | None,
        status: TaskStatus,
    ) -> CompletionReport:
        """Run a cancel/expire ``step`` and store ``record``'s results: inside the step
        when this backend holds the result store (before the state change is persisted,
        so a crash leaves no ended task without its result), else right after."""
        here = self.locked_results(record.result_store) if record is not None else None
        if record is None or here is None:
            report = await self._run(step)
            if record is not None:
                await self.record_results(report, record, status)
        else:
            written: list[str] = []

            def run(s: QueueState, t: float) -> CompletionReport:
                report = step(s, t)
                done = [r.task for i in report.done if (r := s.recs.get(i)) is not None]
                results = record.results(done, status, report.cancelled, t)
                if results:
                    here.store(results)
                    written.extend(r.task_id for r in results)
                return report

            report = await self._run(run)
            if written:
                here.wake.notify(written)
        if report.released:
            self.wake.notify()
        return report

    async def cancel(
        self, task_ids: Sequence[str], *, dependency_policy: DependencyPolicy = "cancel"
    ) -> CompletionReport:
        ids = list(task_ids)
        return await self._end(
            lambda s, t: s.cancel(ids, dependency_policy, t), None, TaskStatus.CANCELLED
        )

    async def cancel_with_results(
        self,
        task_ids: Sequence[str],
        record: ResultRecord,
        *,
        dependency_policy: DependencyPolicy = "cancel",
    ) -> CompletionReport:
        ids = list(task_ids)
        return await self._end(
            lambda s, t: s.cancel(ids, dependency_policy, t), record, TaskStatus.CANCELLED
        )

    async def reclaim_expired(self) -> list[str]:
        ids = await self._run(lambda s, t: s.reclaim_expired(t))
        if ids:
            self.wake.notify()
        return ids

    async def expire(self, *, dependency_policy: DependencyPolicy = "cancel") -> CompletionReport:
        return await self._end(
            lambda s, t: s.expire(dependency_policy, t), None, TaskStatus.EXPIRED
        )

    async def expire_with_results(
        self, record: ResultRecord, *, dependency_policy: DependencyPolicy = "cancel"
    ) -> CompletionReport:
        return await self._end(
            lambda s, t: s.expire(dependency_policy, t), record, TaskStatus.EXPIRED
        )

    async def get(self, task_ids: Sequence[str]) -> list[Task | None]:
        ids = list(task_ids)
        return await self._run(lambda s, t: s.get(ids))

    async def list(
        self,
        *,
        queue: str | None = None,
        status: TaskStatus | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[Task]:
        return await self._run(lambda s, t: s.list_tasks(queue, status, limit, offset))

    async def count(self, *, queue: str | None = None, status: TaskStatus | None = None) -> int:
        return await self._run(lambda s, t: sum(1 for _ in s.select(queue, status)))

    async def counts(self) -> dict[tuple[str, TaskStatus], int]:
        return await self._run(lambda s, t: s.counts())

    async def purge(self, *, finished_before: float, status: TaskStatus | None = None) -> int:
        return await self._run(lambda s, t: s.purge(finished_before, status))

    async def requeue(self, task_ids: Sequence[str]) -> builtins.list[str]:
        ids = list(task_ids)
        out = await self._run(lambda s, t: s.requeue(ids, t))
        if out:
            self.wake.notify()
        return out

    async def pause_queue(self, queue: str) -> bool:
        return await self._run(lambda s, t: s.pause_queue(queue))

    async def resume_queue(self, queue: str) -> bool:
        changed = await self._run(lambda s, t: s.resume_queue(queue))
        self.wake.notify()
        return changed

    async def paused_queues(self) -> builtins.list[str]:
        return await self._run(lambda s, t: sorted(s.paused))

    limited: builtins.list[str] = []
    """The limit keys the last claim held tasks back for."""
    admitted: float | None = None
    """When (``time.monotonic``) the last claim counted its rate-limited starts: under
    the store's lock, which the call may have waited for; None when it counted none."""

    async def list_limits(self) -> builtins.list[LimitInfo]:
        return await self._run(lambda s, t: s.limit_info(t))

    async def wait_for_work(self, queues: Sequence[str], timeout: float) -> bool:  # noqa: ASYNC109
        qs = list(queues)

        async def probe() -> tuple[bool, float | None, int]:
            version = self.wake.version
            ready, eta = await self._run(lambda s, t: (s.has_ready(qs, t), s.next_eta()))
            return ready, eta, version

        return await wait_for_work(
            self.wake, probe, timeout, poll=self._poll, max_poll=self._max_poll
        )


class StateSchedules(ScheduleStorage):
    """The schedule contract over a state runner; claim_due is atomic under the runner."""

    def __init__(self, run: Callable[[Callable[[QueueState, float], object]], Awaitable[object]]):
        self._run_any = run

    async def _run(self, fn: Callable[[QueueState, float], T]) -> T:
        return await self._run_any(fn)  # type: ignore[return-value]

    async def put(self, schedules: Sequence[Schedule]) -> None:
        items = list(schedules)

        def run(s: QueueState, t: float) -> None:
            for x in items:
                s.put_schedule(x)

        await self._run(run)

    async def get(self, schedule_id: str) -> Schedule | None:
        return await self._run(lambda s, t: s.schedules.get(schedule_id))

    async def list(self, *, state: ScheduleState | None = None) -> builtins.list[Schedule]:
        return await self._run(lambda s, t: s.list_schedules(state))

    async def delete(self, schedule_id: str) -> bool:
        return await self._run(lambda s, t: s.delete_schedule(schedule_id))

    async def _update(
        self, schedule_id: str, change: Callable[[Schedule], Schedule]
    ) -> Schedule | None:
        def run(s: QueueState, t: float) -> Schedule | None:
            found = s.schedules.get(schedule_id)
            if found is None:
                return None
            new = change(found)
            s.put_schedule(new)
            return new

        return await self._run(run)

    async def pause(self, schedule_id: str) -> Schedule | None:
        return await self._update(schedule_id, lambda x: x.paused())

    async def resume(self, schedule_id: str, *, now: float | None = None) -> Schedule | None:
        return await self._update(schedule_id, lambda x: x.resumed(now))

    async def claim_due(self, now: float, *, limit: int = 100) -> builtins.list[ScheduleRun]:
        return await self._run(lambda s, t: s.claim_due(now, limit))
