"""The in-process backend (``memory://``): all four contracts, nothing persisted.

State lives in one ``QueueState`` guarded by a thread lock, so producers and workers
on other threads of the same process may share it. ``wait_for_work`` and result
``wait`` are woken by in-process notification (no polling). Useful for tests and
single-process apps that accept losing queued work when the process exits.
"""

from __future__ import annotations

import bisect
import builtins
import threading
from collections.abc import Sequence

from omniq.models import (
    ClaimedTask,
    EventType,
    Schedule,
    ScheduleState,
    Task,
    TaskEvent,
    TaskResult,
    TaskStatus,
    now,
)

from ._interfaces import (
    Backend,
    Completion,
    CompletionReport,
    DependencyPolicy,
    EventStorage,
    LeaseRef,
    ResultStorage,
    RetryRequest,
    ScheduleRun,
    ScheduleStorage,
    TaskQueueStorage,
)
from ._notify import Notifier
from ._state import QueueState
from ._waiting import wait_for_result, wait_for_work

__all__ = ["MemoryBackend"]


class _Tasks(TaskQueueStorage):
    def __init__(self, state: QueueState, lock: threading.Lock) -> None:
        self._state, self._lock = state, lock
        self.notifier = Notifier()

    async def enqueue(
        self, tasks: Sequence[Task], *, dependency_policy: DependencyPolicy = "cancel"
    ) -> list[Task]:
        with self._lock:
            out = self._state.enqueue(tasks, now(), dependency_policy)
        self.notifier.notify()
        return out

    async def claim(
        self, queues: Sequence[str], worker_id: str, *, limit: int = 1, lease: float = 30.0
    ) -> list[ClaimedTask]:
        with self._lock:
            return self._state.claim(queues, worker_id, limit, lease, now())

    async def renew(self, leases: Sequence[LeaseRef], lease: float) -> list[str]:
        with self._lock:
            return self._state.renew(leases, lease, now())

    async def complete(
        self, completions: Sequence[Completion], *, dependency_policy: DependencyPolicy = "cancel"
    ) -> CompletionReport:
        with self._lock:
            report = self._state.complete(completions, dependency_policy, now())
        if report.released:
            self.notifier.notify()
        return report

    async def retry(self, requests: Sequence[RetryRequest]) -> list[str]:
        with self._lock:
            stale = self._state.retry(requests, now())
        self.notifier.notify()
        return stale

    async def release(self, leases: Sequence[LeaseRef]) -> list[str]:
        with self._lock:
            stale = self._state.release(leases, now())
        self.notifier.notify()
        return stale

    async def cancel(
        self, task_ids: Sequence[str], *, dependency_policy: DependencyPolicy = "cancel"
    ) -> CompletionReport:
        with self._lock:
            report = self._state.cancel(task_ids, dependency_policy, now())
        if report.released:
            self.notifier.notify()
        return report

    async def reclaim_expired(self) -> list[str]:
        with self._lock:
            ids = self._state.reclaim_expired(now())
        if ids:
            self.notifier.notify()
        return ids

    async def expire(self, *, dependency_policy: DependencyPolicy = "cancel") -> CompletionReport:
        with self._lock:
            report = self._state.expire(dependency_policy, now())
        if report.released:
            self.notifier.notify()
        return report

    async def get(self, task_ids: Sequence[str]) -> list[Task | None]:
        with self._lock:
            return self._state.get(task_ids)

    async def list(
        self,
        *,
        queue: str | None = None,
        status: TaskStatus | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[Task]:
        with self._lock:
            return self._state.list_tasks(queue, status, limit, offset)

    async def count(self, *, queue: str | None = None, status: TaskStatus | None = None) -> int:
        with self._lock:
            return sum(1 for _ in self._state.select(queue, status))

    async def counts(self) -> dict[tuple[str, TaskStatus], int]:
        with self._lock:
            return self._state.counts()

    async def purge(self, *, finished_before: float) -> int:
        with self._lock:
            return self._state.purge(finished_before)

    async def wait_for_work(self, queues: Sequence[str], timeout: float) -> bool:  # noqa: ASYNC109
        async def probe() -> tuple[bool, float | None, int]:
            with self._lock:
                version = self.notifier.version
                return self._state.has_ready(queues, now()), self._state.next_eta(), version

        return await wait_for_work(self.notifier, probe, timeout)


class _Results(ResultStorage):
    def __init__(self) -> None:
        self._data: dict[str, TaskResult] = {}
        self._lock = threading.Lock()
        self.notifier = Notifier()

    async def put(self, results: Sequence[TaskResult]) -> None:
        with self._lock:
            for r in results:
                self._data[r.task_id] = r
        self.notifier.notify([r.task_id for r in results])

    async def get(self, task_ids: Sequence[str]) -> list[TaskResult | None]:
        t = now()
        with self._lock:
            found = [self._data.get(i) for i in task_ids]
        return [
            r if r is not None and (r.expires_at is None or r.expires_at > t) else None
            for r in found
        ]

    async def wait(self, task_id: str, timeout: float | None) -> TaskResult | None:  # noqa: ASYNC109
        return await wait_for_result(self, self.notifier, task_id, timeout)

    async def delete(self, task_ids: Sequence[str]) -> int:
        with self._lock:
            return sum(1 for i in task_ids if self._data.pop(i, None) is not None)

    async def purge_expired(self) -> int:
        t = now()
        with self._lock:
            doomed = [
                k for k, r in self._data.items() if r.expires_at is not None and r.expires_at <= t
            ]
            for k in doomed:
                del self._data[k]
        return len(doomed)


class _Events(EventStorage):
    def __init__(self) -> None:
        self._events: list[tuple[float, str, TaskEvent]] = []
        self._lock = threading.Lock()

    async def append(self, events: Sequence[TaskEvent]) -> None:
        with self._lock:
            for e in events:
                bisect.insort(self._events, (e.timestamp, e.id, e), key=lambda x: (x[0], x[1]))

    async def query(
        self,
        *,
        task_id: str | None = None,
        types: Sequence[EventType] | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int | None = None,
    ) -> list[TaskEvent]:
        wanted = set(types) if types is not None else None
        out: list[TaskEvent] = []
        with self._lock:
            for ts, _, e in self._events:
                if since is not None and ts < since:
                    continue
                if until is not None and ts >= until:
                    break
                if task_id is not None and e.task_id != task_id:
                    continue
                if wanted is not None and e.type not in wanted:
                    continue
                out.append(e)
                if limit is not None and len(out) >= limit:
                    break
        return out

    async def purge(self, *, older_than: float | None = None, keep_last: int | None = None) -> int:
        with self._lock:
            before = len(self._events)
            kept = self._events
            if older_than is not None:
                kept = [x for x in kept if x[0] >= older_than]
            if keep_last is not None:
                kept = kept[-keep_last:] if keep_last > 0 else []
            self._events = kept
            return before - len(kept)

    async def count(self) -> int:
        with self._lock:
            return len(self._events)


class _Schedules(ScheduleStorage):
    def __init__(self, state: QueueState, lock: threading.Lock) -> None:
        self._state, self._lock = state, lock

    async def put(self, schedules: Sequence[Schedule]) -> None:
        with self._lock:
            for s in schedules:
                self._state.put_schedule(s)

    async def get(self, schedule_id: str) -> Schedule | None:
        with self._lock:
            return self._state.schedules.get(schedule_id)

    async def list(self, *, state: ScheduleState | None = None) -> list[Schedule]:
        with self._lock:
            return self._state.list_schedules(state)

    async def delete(self, schedule_id: str) -> bool:
        with self._lock:
            return self._state.delete_schedule(schedule_id)

    async def pause(self, schedule_id: str) -> Schedule | None:
        with self._lock:
            s = self._state.schedules.get(schedule_id)
            if s is None:
                return None
            s = s.paused()
            self._state.put_schedule(s)
            return s

    async def resume(self, schedule_id: str, *, now: float | None = None) -> Schedule | None:
        with self._lock:
            s = self._state.schedules.get(schedule_id)
            if s is None:
                return None
            s = s.resumed(now)
            self._state.put_schedule(s)
            return s

    async def claim_due(self, now: float, *, limit: int = 100) -> builtins.list[ScheduleRun]:
        with self._lock:
            return self._state.claim_due(now, limit)


class MemoryBackend(Backend):
    """All four contracts in this process's memory (``memory://``)."""

    def __init__(self, url: str = "memory://") -> None:
        self.url = url
        state = QueueState()
        lock = threading.Lock()
        self.tasks = _Tasks(state, lock)
        self.results = _Results()
        self.events = _Events()
        self.schedules = _Schedules(state, lock)

    async def connect(self) -> None:
        """Nothing to open."""

    async def close(self) -> None:
        """Nothing to release; the state lives as long as the object."""
