"""TTLManager: expire unstarted tasks, reclaim dead leases, purge old results and tasks."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence

import anyio
import msgspec

from omniq.models import BackendUnavailableError, Task, now
from omniq.storage import (
    CompletionReport,
    DependencyPolicy,
    ResultRecord,
    ResultStorage,
    TaskQueueStorage,
)

__all__ = ["TTLManager", "TTLReport"]

_log = logging.getLogger("omniq.queue")

Recorder = Callable[[Sequence[Task], CompletionReport], Awaitable[None]]
"""Called after an expiry with the ``expired`` tasks and the store's report: logs their
EXPIRED events and the CANCELLED ones of the cascade (``AsyncTaskQueue.log_expired``)."""


class TTLReport(msgspec.Struct, kw_only=True):
    """What one sweep did."""

    expired: int = 0
    cancelled: int = 0
    reclaimed: int = 0
    results_purged: int = 0
    tasks_purged: int = 0


class TTLManager:
    """One sweep (``run_once``) or a loop (``run``) over the storage's TTL duties.

    - pending tasks past ``expires_at`` become ``expired`` (never run), their dependents
      cancelled per policy; with ``result_record`` the store writes their results in
      the same step (``TaskQueueStorage.expire_with_results``), then ``record`` logs
      their events;
    - expired leases are reclaimed (crash recovery);
    - results past their ``expires_at`` (RESULT_TTL) are purged;
    - terminal tasks finished more than ``task_retention`` seconds ago are purged
      (0 keeps them);
    - the store does its own housekeeping (``TaskQueueStorage.maintain``).
    """

    def __init__(
        self,
        tasks: TaskQueueStorage,
        results: ResultStorage | None,
        record: Recorder,
        *,
        dependency_policy: DependencyPolicy = "cancel",
        task_retention: float = 0.0,
        interval: float = 1.0,
        result_record: ResultRecord | None = None,
    ) -> None:
        self._tasks = tasks
        self._results = results
        self._record = record
        self.result_record = result_record
        self.dependency_policy: DependencyPolicy = dependency_policy
        self.task_retention = task_retention
        self.interval = interval

    async def expire(self) -> TTLReport:
        """Expire due tasks with their results, then log their events (cheap; workers and
        schedulers call it often)."""
        policy = self.dependency_policy
        if self.result_record is not None:
            report = await self._tasks.expire_with_results(
                self.result_record, dependency_policy=policy
            )
        else:
            report = await self._tasks.expire(dependency_policy=policy)
        if not report.done and not report.cancelled:
            return TTLReport()
        expired = [t for t in await self._tasks.get(report.done) if t is not None]
        await self._record(expired, report)
        return TTLReport(expired=len(report.done), cancelled=len(report.cancelled))

    async def run_once(self) -> TTLReport:
        """A full sweep."""
        out = await self.expire()
        out.reclaimed = len(await self._tasks.reclaim_expired())
        await self._tasks.maintain()
        if self._results is not None:
            out.results_purged = await self._results.purge_expired()
        if self.task_retention > 0:
            out.tasks_purged = await self._tasks.purge(finished_before=now() - self.task_retention)
        return out

    async def run(self) -> None:
        """Sweep every ``interval`` seconds until cancelled; errors are logged, not raised."""
        while True:
            try:
                await self.run_once()
            except BackendUnavailableError as exc:  # the store logs its outage itself
                _log.debug("TTL sweep skipped: %s", exc)
            except Exception:
                _log.warning("TTL sweep failed", exc_info=True)
            await anyio.sleep(self.interval)
