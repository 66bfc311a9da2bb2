"""The in-process backend (``memory://``): all four contracts, nothing persisted.

State lives in one ``QueueState`` guarded by a thread lock, so producers and workers
on other threads of the same process may share it. ``wait_for_work`` and result
``wait`` are woken by in-process notification (no polling). Useful for tests and
single-process apps that accept losing queued work when the process exits.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from omniq.config import Settings

from omniq.models import (
    EventType,
    TaskEvent,
    TaskResult,
    now,
)
from omniq.storage._interfaces import (
    Backend,
    Completion,
    CompletionReport,
    DependencyPolicy,
    EventStorage,
    ResultRecord,
    ResultStorage,
    cascades,
)
from omniq.storage._limits import PayloadLimit
from omniq.storage._state import QueueState
from omniq.storage._state_storage import (
    LockedResults,
    StateSchedules,
    StateTasks,
    cascaded,
)
from omniq.storage._wake import Wake, wait_for_result
from omniq.storage._workers import InProcessWorkers

__all__ = ["MemoryBackend"]

T = TypeVar("T")


class _Results(ResultStorage):
    def __init__(self) -> None:
        self._data: dict[str, TaskResult] = {}
        self._lock = threading.Lock()
        self.wake = Wake()

    async def put(self, results: Sequence[TaskResult]) -> None:
        self.payload_limit.check_results(results)
        self.store(results)
        self.wake.notify([r.task_id for r in results])

    def store(self, results: Sequence[TaskResult]) -> None:
        """Write without notifying (``put`` and the task store's ``finish``)."""
        with self._lock:
            data = self._data
            for r in results:
                data[r.task_id] = r

    async def get(self, task_ids: Sequence[str]) -> list[TaskResult | None]:
        t = now()
        with self._lock:
            found = [self._data.get(i) for i in task_ids]
        return [
            r if r is not None and (r.expires_at is None or r.expires_at > t) else None
            for r in found
        ]

    async def wait(self, task_id: str, timeout: float | None) -> TaskResult | None:  # noqa: ASYNC109
        return await wait_for_result(lambda: self.get_one(task_id), self.wake, task_id, timeout)

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


class _Tasks(StateTasks):
    """StateTasks whose ``finish``, ``cancel`` and ``expire`` write this backend's
    results under the state lock: state change and results in one step."""

    def __init__(
        self,
        run: Callable[[Callable[[QueueState, float], object]], Awaitable[object]],
        results: _Results,
    ) -> None:
        super().__init__(run)
        self._results = results

    def locked_results(self, store: ResultStorage) -> LockedResults | None:
        return self._results if store is self._results else None

    async def finish(
        self,
        completions: Sequence[Completion],
        results: Sequence[TaskResult],
        result_store: ResultStorage | None,
        *,
        lease: float,
        dependency_policy: DependencyPolicy = "cancel",
        record: ResultRecord | None = None,
    ) -> CompletionReport:
        if result_store is not None:
            result_store.payload_limit.check_results(results)
        cascade = record is not None and cascades(completions, dependency_policy)
        here = self.locked_results(record.result_store) if record is not None else None
        if result_store is not self._results or not results or (cascade and here is None):
            return await super().finish(
                completions,
                results,
                result_store,
                lease=lease,
                dependency_policy=dependency_policy,
                record=record,
            )
        by_id = {r.task_id: r for r in results}
        items = list(completions)
        store = self._results.store
        written: list[str] = []

        def run(s: QueueState, t: float) -> CompletionReport:
            kept = [
                by_id[c.task_id]
                for c in items
                if c.task_id in by_id
                and c.status.is_terminal
                and s._leased(c.task_id, c.token) is not None
            ]
            store(kept)
            written.extend(r.task_id for r in kept)
            report = s.complete(items, dependency_policy, t)
            if here is not None and record is not None:
                written.extend(cascaded(here, record, report, t))
            return report

        report = await self._run(run)
        if written:
            self._results.wake.notify(written)
        if report.released:
            self.wake.notify()
        return report


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


class MemoryBackend(Backend):
    """All four contracts in this process's memory (``memory://``)."""

    @classmethod
    def default_url(cls, settings: Settings, store: str) -> str | None:
        """Every store defaults to this process's memory."""
        return "memory://"

    def __init__(self, url: str = "memory://") -> None:
        self.url = url
        self._state = QueueState()
        self._lock = threading.Lock()
        self.results = _Results()
        self.tasks = _Tasks(self._run, self.results)
        self.events = _Events()
        self.schedules = StateSchedules(self._run)
        self.workers = InProcessWorkers()
        self.share_payload_limit(PayloadLimit("memory"))

    async def _run(self, fn: Callable[[QueueState, float], T]) -> T:
        with self._lock:
            try:
                return fn(self._state, now())
            finally:
                self._state.reset_changes()

    async def connect(self) -> None:
        """Nothing to open."""

    async def close(self) -> None:
        """Nothing to release; the state lives as long as the object."""
