"""The four storage contracts every backend implements (architecture.md section 3).

Batch-first: each mutating call takes a sequence and the single-item form is a batch
of one. Every state change that must be atomic is atomic inside the engine
(transaction, Lua script, JetStream ack), never a read-modify-write from Python.
The conformance suite in ``omniq.storage.testing`` is the executable definition.
"""

from __future__ import annotations

import abc
import builtins
from collections import deque
from collections.abc import Callable, Collection, Sequence
from typing import TYPE_CHECKING, Literal

import msgspec

if TYPE_CHECKING:
    from omniq.config import Settings

from omniq.models import (
    ClaimedTask,
    ErrorInfo,
    EventType,
    LimitInfo,
    Progress,
    QueueInfo,
    Schedule,
    ScheduleState,
    Task,
    TaskCancelledError,
    TaskEvent,
    TaskExpiredError,
    TaskResult,
    TaskStatus,
    TransactionalEnqueueError,
    WorkerInfo,
    now,
)

from ._cancel import CancelFeed, watch_cancels
from ._limits import PayloadLimit

__all__ = [
    "CASCADE_REASON",
    "Backend",
    "Completion",
    "CompletionReport",
    "DependencyPolicy",
    "EventStorage",
    "LeaseRef",
    "PayloadLimit",
    "ProgressUpdate",
    "ResultRecord",
    "ResultStorage",
    "RetryRequest",
    "ScheduleRun",
    "ScheduleStorage",
    "TaskQueueStorage",
    "WorkerRegistry",
]

DependencyPolicy = Literal["cancel", "release"]


class LeaseRef(msgspec.Struct, frozen=True):
    """Names one lease: the task and the fencing token its claim returned."""

    task_id: str
    token: str

    @classmethod
    def of(cls, claimed: ClaimedTask) -> LeaseRef:
        return cls(claimed.task.id, claimed.token)


class Completion(msgspec.Struct, frozen=True):
    """Ends a leased task in a terminal status (success, error, cancelled, expired)."""

    task_id: str
    token: str
    status: TaskStatus = TaskStatus.SUCCESS


class RetryRequest(msgspec.Struct, frozen=True):
    """Returns a leased task to the queue to run again not before ``eta``."""

    task_id: str
    token: str
    eta: float | None = None


class ProgressUpdate(msgspec.Struct, frozen=True):
    """Progress of a leased task, written under its lease (``set_progress``)."""

    task_id: str
    token: str
    progress: Progress


class CompletionReport(msgspec.Struct):
    """What a complete/cancel call did.

    ``stale``: ids refused because the token was no longer current (fencing).
    ``released``: dependents that became runnable because their last dependency
    succeeded (or failed, under the ``release`` policy).
    ``cancelled``: dependents cancelled because a dependency failed, was cancelled or
    expired (``cancel`` policy), transitively; the caller records their results/events.
    """

    done: list[str] = msgspec.field(default_factory=list)
    stale: list[str] = msgspec.field(default_factory=list)
    released: list[str] = msgspec.field(default_factory=list)
    cancelled: list[Task] = msgspec.field(default_factory=list)


class ScheduleRun(msgspec.Struct, frozen=True):
    """A schedule run claimed by one scheduler: fire ``schedule``'s task for ``due``.

    ``schedule`` is the state after the claim (``next_run_at`` already advanced).
    """

    schedule: Schedule
    due: float


class TaskQueueStorage(abc.ABC):
    """Durable queue of tasks with leases.

    Lifecycle: ``enqueue`` stores tasks as pending. A pending task is *ready* when its
    eta has come and all its ``depends_on`` have succeeded; ``claim`` hands ready tasks
    to one worker, highest priority first and FIFO (by id) within a priority, sets them
    running, increments ``attempt`` and leases them with a fresh fencing token until
    ``now + lease``. ``renew`` extends a lease (heartbeat). ``complete``, ``retry`` and
    ``release`` end a lease; each refuses a token that is no longer current (the lease
    expired and another worker reclaimed the task) by listing the id as stale.
    A lease that expires returns its task to pending with its attempt count kept
    (``reclaim_expired``, which backends may also apply inside ``claim``).
    Terminal tasks stay readable until ``purge``.

    ``enqueue`` refuses a batch holding a task larger than ``payload_limit`` with
    ``PayloadTooLargeError`` naming it, before storing any of the batch.
    """

    _payload_limit: PayloadLimit | None = None

    @property
    def payload_limit(self) -> PayloadLimit:
        """The largest task this store accepts (``PayloadLimit``: the setting, the engine's
        hard limit learnt at connect, the smaller in force); shared with its backend."""
        if self._payload_limit is None:
            self._payload_limit = PayloadLimit(type(self).__name__)
        return self._payload_limit

    @payload_limit.setter
    def payload_limit(self, value: PayloadLimit) -> None:
        self._payload_limit = value

    @abc.abstractmethod
    async def enqueue(
        self, tasks: Sequence[Task], *, dependency_policy: DependencyPolicy = "cancel"
    ) -> list[Task]:
        """Store tasks as pending; returns the tasks as stored, in order.

        A task whose ``key`` is held by another task is not stored: the holder is
        returned in its place; so is a task whose id is already stored (enqueue is
        idempotent by id). A task holds its key while it is live (non-terminal) and,
        with ``unique_for``, until ``created_at + unique_for`` whatever its state. A
        task with ``on_conflict="replace"`` that meets a pending holder first gives it
        its ``payload`` and ``eta`` (a running or finished holder is left as it is).
        The check and the store are atomic. A task whose dependencies have not all succeeded
        yet waits; one whose dependency already failed/was cancelled/expired is stored
        cancelled (``dependency_policy="cancel"``) or ready (``"release"``).
        """

    async def enqueue_in_transaction(
        self,
        connection: object,
        tasks: Sequence[Task],
        *,
        dependency_policy: DependencyPolicy = "cancel",
        record: ResultRecord | None = None,
    ) -> list[Task]:
        """``enqueue`` inside the caller's open transaction on ``connection`` (a driver
        connection to the database this store lives in): the rows exist only if that
        transaction commits. Only stores inside a SQL database can (PostgreSQL, SQLite);
        the default refuses with ``TransactionalEnqueueError`` naming the alternative.
        ``record`` as in ``enqueue_with_results``: those results go in the same
        transaction when ``record.result_store`` lives in that database."""
        raise TransactionalEnqueueError(
            f"{type(self).__name__} keeps tasks outside your database, so it cannot join "
            "your transaction: enqueue after the commit (Django: "
            "omniq.contrib.django.enqueue_on_commit), or use a PostgreSQL or SQLite "
            "task store"
        )

    async def enqueue_with_results(
        self,
        tasks: Sequence[Task],
        record: ResultRecord,
        *,
        dependency_policy: DependencyPolicy = "cancel",
    ) -> list[Task]:
        """``enqueue``, also storing in ``record.result_store`` the ``cancelled`` result
        (``CASCADE_REASON``) of every task it stores already cancelled (a dependency had
        already failed, ``dependency_policy="cancel"``).

        A backend holding ``record.result_store`` itself writes them in the enqueue's
        atomic step, so no crash leaves such a task without its result; the default
        stores them right after (``record_born_cancelled``)."""
        stored = await self.enqueue(tasks, dependency_policy=dependency_policy)
        await self.record_born_cancelled(tasks, stored, record)
        return stored

    async def record_born_cancelled(
        self, tasks: Sequence[Task], stored: Sequence[Task], record: ResultRecord
    ) -> None:
        """Store ``record``'s ``cancelled`` results for the tasks of an ``enqueue``
        (``tasks`` as sent, ``stored`` as returned) stored already cancelled, after it:
        the default path of ``enqueue_with_results``."""
        born = [
            got
            for sent, got in zip(tasks, stored, strict=True)
            if got.id == sent.id and got.status is TaskStatus.CANCELLED
        ]
        if born:
            await record.result_store.put(record.results((), TaskStatus.CANCELLED, born, now()))

    @abc.abstractmethod
    async def claim(
        self, queues: Sequence[str], worker_id: str, *, limit: int = 1, lease: float = 30.0
    ) -> list[ClaimedTask]:
        """Lease up to ``limit`` ready tasks from ``queues`` to ``worker_id``."""

    @abc.abstractmethod
    async def renew(self, leases: Sequence[LeaseRef], lease: float) -> list[str]:
        """Extend leases to ``now + lease``; returns the ids whose lease was lost."""

    @abc.abstractmethod
    async def complete(
        self, completions: Sequence[Completion], *, dependency_policy: DependencyPolicy = "cancel"
    ) -> CompletionReport:
        """End leased tasks in a terminal status and resolve their dependents."""

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
        """Store ``results`` in ``result_store``, then ``complete``: the worker's way to end
        leased tasks. Fenced: a task whose lease was lost gets neither (it is listed in
        ``stale``), and a crash between the two steps leaves a task that runs again,
        never a finished task without its result.

        The default renews the leases (the fence), puts the results, then completes
        (three calls); a backend holding ``result_store`` itself does it in one atomic
        step. With ``record``, the dependents a failure cancels (the report's
        ``cancelled``) also get their ``cancelled`` result in ``record.result_store``
        (``complete_with_results``): in the completion's atomic step where the backend
        holds that store.
        """
        stale: list[str] = []
        if results and result_store is not None:
            result_store.payload_limit.check_results(results)
            stale = await self.renew([LeaseRef(c.task_id, c.token) for c in completions], lease)
            lost = set(stale)
            kept = [r for r in results if r.task_id not in lost]
            if kept:
                await result_store.put(kept)
            completions = [c for c in completions if c.task_id not in lost]
        if record is not None and cascades(completions, dependency_policy):
            report = await self.complete_with_results(
                completions, record, dependency_policy=dependency_policy
            )
        else:
            report = await self.complete(completions, dependency_policy=dependency_policy)
        if stale:
            report.stale = stale + report.stale
        return report

    async def complete_with_results(
        self,
        completions: Sequence[Completion],
        record: ResultRecord,
        *,
        dependency_policy: DependencyPolicy = "cancel",
    ) -> CompletionReport:
        """``complete``, also storing a ``cancelled`` result (``CASCADE_REASON``) in
        ``record.result_store`` for every dependent the call cancelled (the report's
        ``cancelled``); the completed tasks' own results are the worker's (``finish``).

        A backend holding ``record.result_store`` itself writes them in the completion's
        atomic step, so no crash leaves a cascaded task without its result; the default
        stores them right after (``record_results``)."""
        report = await self.complete(completions, dependency_policy=dependency_policy)
        if report.cancelled:
            await self.record_results(
                CompletionReport(cancelled=report.cancelled), record, TaskStatus.CANCELLED
            )
        return report

    @abc.abstractmethod
    async def retry(self, requests: Sequence[RetryRequest]) -> list[str]:
        """Return leased tasks to pending with the given eta; returns stale ids."""

    async def defer(self, requests: Sequence[RetryRequest]) -> list[str]:
        """Return leased tasks to pending not before ``eta`` with the attempt taken by the
        claim given back: the task did not run (its function's circuit breaker is open).
        Returns stale ids. The default (for backends that do not override it) is
        ``retry``, which keeps the attempt."""
        return await self.retry(requests)

    @abc.abstractmethod
    async def release(self, leases: Sequence[LeaseRef]) -> list[str]:
        """Hand leased tasks back unrun (shutdown): pending again at once, the attempt
        taken by the claim given back. Returns stale ids."""

    @abc.abstractmethod
    async def cancel(
        self, task_ids: Sequence[str], *, dependency_policy: DependencyPolicy = "cancel"
    ) -> CompletionReport:
        """Cancel non-terminal tasks (a running task's lease becomes stale, so its
        worker's outcome is refused). ``done`` lists the ids cancelled."""

    async def cancel_with_results(
        self,
        task_ids: Sequence[str],
        record: ResultRecord,
        *,
        dependency_policy: DependencyPolicy = "cancel",
    ) -> CompletionReport:
        """``cancel``, also storing a ``cancelled`` result (``ResultRecord.results``) in
        ``record.result_store`` for every task the call ended (``done`` and the cascaded
        ``cancelled``).

        A backend holding ``record.result_store`` itself (same engine) writes them in
        the same atomic step as the state change (transaction, script, lock), so no
        crash leaves a cancelled task without its result. The default, for results in
        another engine, stores them right after the state change (``record_results``):
        a crash in between leaves those tasks without their result."""
        report = await self.cancel(task_ids, dependency_policy=dependency_policy)
        await self.record_results(report, record, TaskStatus.CANCELLED)
        return report

    @abc.abstractmethod
    async def reclaim_expired(self) -> list[str]:
        """Return tasks whose lease has expired to pending; returns their ids."""

    async def maintain(self) -> None:
        """Housekeeping of the engine's own structures, called by the workers' TTL sweeps
        (about once a second); it must return quickly (long work runs in the background).
        The default does nothing; PostgreSQL vacuums its tables when dead rows pile up."""
        return None

    @abc.abstractmethod
    async def expire(self, *, dependency_policy: DependencyPolicy = "cancel") -> CompletionReport:
        """Mark pending tasks past ``expires_at`` as expired (``done``), resolving their
        dependents like a failure."""

    async def expire_with_results(
        self, record: ResultRecord, *, dependency_policy: DependencyPolicy = "cancel"
    ) -> CompletionReport:
        """``expire``, also storing an ``expired`` result for each task in ``done`` and a
        ``cancelled`` one for each cascaded task in ``record.result_store``: atomically
        where the backend holds that store, else right after, as ``cancel_with_results``."""
        report = await self.expire(dependency_policy=dependency_policy)
        await self.record_results(report, record, TaskStatus.EXPIRED)
        return report

    async def record_results(
        self, report: CompletionReport, record: ResultRecord, status: TaskStatus
    ) -> None:
        """Store ``record``'s results for the tasks a ``cancel`` (``status`` cancelled) or
        ``expire`` (expired) ended, after its state change: the default path of
        ``cancel_with_results``/``expire_with_results``. Reads the ended tasks (for
        their attempt count), then puts one batch."""
        if not (report.done or report.cancelled):
            return
        done = [t for t in await self.get(report.done) if t is not None]
        results = record.results(done, status, report.cancelled, now())
        if results:
            await record.result_store.put(results)

    @abc.abstractmethod
    async def get(self, task_ids: Sequence[str]) -> list[Task | None]:
        """Read tasks with their current status and attempt; None for unknown ids."""

    @abc.abstractmethod
    async def list(
        self,
        *,
        queue: str | None = None,
        status: TaskStatus | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[Task]:
        """Tasks filtered by queue and status, ordered by id (creation order)."""

    async def list_page(
        self,
        *,
        queue: str | None = None,
        status: TaskStatus | None = None,
        after: str | None = None,
        before: str | None = None,
        limit: int = 100,
    ) -> builtins.list[Task]:
        """The newest ``limit`` tasks with ``after < id < before`` (each bound optional),
        filtered by queue and status, newest first: keyset paging for dashboards, whose
        next page passes the last id shown as ``before``. Ids made by ``new_id`` sort by
        creation time, so a time window is an id window.

        The default walks ``list``; engines with an index on ``id`` override it so that
        a page costs the same on page one and page one thousand."""
        if limit <= 0:
            return []
        kept: deque[Task] = deque(maxlen=limit)
        offset, chunk = 0, 1000
        while True:
            page = await self.list(queue=queue, status=status, limit=chunk, offset=offset)
            offset += len(page)
            for t in page:
                if (after is None or t.id > after) and (before is None or t.id < before):
                    kept.append(t)
            if len(page) < chunk or (before is not None and page[-1].id >= before):
                break
        return list(reversed(kept))

    @abc.abstractmethod
    async def count(self, *, queue: str | None = None, status: TaskStatus | None = None) -> int:
        """How many tasks match."""

    @abc.abstractmethod
    async def counts(self) -> dict[tuple[str, TaskStatus], int]:
        """Task counts by (queue, status), for ``omniq status``."""

    @abc.abstractmethod
    async def purge(self, *, finished_before: float, status: TaskStatus | None = None) -> int:
        """Delete terminal tasks that finished before the instant; returns how many.

        ``status`` narrows it to one terminal status (``error`` empties the dead letters).
        """

    @abc.abstractmethod
    async def requeue(self, task_ids: Sequence[str]) -> builtins.list[str]:
        """Give dead letters another run: each task in ``error`` (failed for good, its
        retries or crash attempts used up) becomes pending again, due now, with
        ``attempt`` 0 and no lease, atomically inside the engine. Returns the ids
        requeued, in order; unknown ids and tasks in any other status are skipped.
        Dependents already cancelled by the failure stay cancelled."""

    @abc.abstractmethod
    async def wait_for_work(self, queues: Sequence[str], timeout: float) -> bool:  # noqa: ASYNC109
        """Block until work may be ready in ``queues`` (woken by the engine's own
        notification) or ``timeout`` passes. True if woken; spurious wake-ups allowed."""

    async def wait_for_push(
        self,
        queues: Sequence[str],
        timeout: float,  # noqa: ASYNC109
        *,
        worker_id: str,
        lease: float,
        inbox: Callable[[builtins.list[ClaimedTask]], None],
    ) -> bool:
        """``wait_for_work`` for a worker that also takes tasks handed over already
        claimed: a backend may lease a task to this waiting worker as it is enqueued and
        pass it to ``inbox`` (from its listener, possibly after this call returned),
        saving the claim round trip. The worker renews such a lease on receipt; one it
        never runs goes back with ``close_inbox``, or when its lease lapses. Default:
        plain ``wait_for_work``, no handovers."""
        return await self.wait_for_work(queues, timeout)

    async def close_inbox(self, worker_id: str) -> builtins.list[str]:
        """No more handovers to ``worker_id``; tasks handed over to it and not run go back
        to pending. Returns their ids."""
        return []

    async def get_one(self, task_id: str) -> Task | None:
        """Read one task (None if unknown)."""
        return (await self.get([task_id]))[0]

    @abc.abstractmethod
    async def pause_queue(self, queue: str) -> bool:
        """Pause ``queue``: once this returns, no ``claim`` (nor a handover) on any
        process leases a task of it until ``resume_queue``, enforced inside the engine's
        claim. Tasks leased before keep their leases and finish; ``enqueue`` still stores
        tasks into it. Persistent and idempotent: True if the queue was not paused."""

    @abc.abstractmethod
    async def resume_queue(self, queue: str) -> bool:
        """Let claims lease ``queue``'s tasks again and wake the workers waiting on it.
        Idempotent: True if the queue was paused."""

    @abc.abstractmethod
    async def paused_queues(self) -> builtins.list[str]:
        """The paused queues, sorted by name (a paused queue need not hold tasks)."""

    async def list_limits(self) -> builtins.list[LimitInfo]:
        """Every flow-limit key with tasks stored under it: its running count (live
        leases) and the starts its rate window still allows, by key.

        ``claim`` enforces ``Task.rate_limit``/``Task.max_concurrency`` per limit key
        atomically: a ready task whose key is at its cap or out of rate budget stays
        pending (no attempt taken) and the claim goes on with the tasks behind it.
        The default, for a backend that enforces no limits, lists none."""
        return []

    async def list_queues(self) -> builtins.list[QueueInfo]:
        """Every queue that holds tasks or is paused, by name, with its task counts by
        status (``counts``) and whether it is paused."""
        counts = await self.counts()
        paused = set(await self.paused_queues())
        names = sorted({q for q, _ in counts} | paused)
        return [
            QueueInfo(
                name=q,
                paused=q in paused,
                counts={s: counts.get((q, s), 0) for s in TaskStatus},
            )
            for q in names
        ]

    # -- task context: progress and prompt cancellation -------------------------------------

    cancel_poll: float | None = 0.2
    """How often ``watch_cancels`` re-reads the status of the watched tasks, for stores
    whose cancels made by other processes arrive by no notification (None: a backend
    whose ``signal_cancel`` reaches every process's watcher; a lost notification is
    still caught by the next lease renewal)."""

    async def set_progress(
        self, updates: Sequence[ProgressUpdate], lease: float
    ) -> builtins.list[str]:
        """Record the progress of leased tasks, fenced by their leases: a task whose
        token is no longer current gets nothing stored and is returned (stale); the
        others' leases are extended to ``now + lease`` (it is a heartbeat too).

        The default renews (the fence) and then calls ``store_progress`` for the tasks
        still held, as ``finish`` does with results; a backend may do both in one step.
        """
        if not updates:
            return []
        stale = await self.renew([LeaseRef(u.task_id, u.token) for u in updates], lease)
        lost = set(stale)
        kept = [u for u in updates if u.task_id not in lost]
        if kept:
            await self.store_progress(kept)
        return stale

    async def store_progress(self, updates: Sequence[ProgressUpdate]) -> None:
        """Write progress records unconditionally (``set_progress`` fences first), the
        latest replacing the previous one. The default keeps them in this object's
        memory (one process); engines store them where every process can read them."""
        mem = self.__dict__.setdefault("_omniq_progress", {})
        for u in updates:
            mem[u.task_id] = u.progress

    async def get_progress(self, task_ids: Sequence[str]) -> builtins.list[Progress | None]:
        """The last progress recorded for each task, None where there is none."""
        mem: dict[str, Progress] = self.__dict__.get("_omniq_progress", {})
        return [mem.get(i) for i in task_ids]

    @property
    def cancel_feed(self) -> CancelFeed:
        """The in-process side of cancel notifications: ``signal_cancel`` and a backend's
        listener push ids into it, ``watch_cancels`` reads them."""
        feed = self.__dict__.get("_omniq_cancel_feed")
        if feed is None:
            feed = self.__dict__.setdefault("_omniq_cancel_feed", CancelFeed())
        return feed  # type: ignore[no-any-return]

    async def signal_cancel(self, task_ids: Sequence[str]) -> None:
        """Tell the workers running ``task_ids`` that ``cancel`` ended them, so they stop
        them now instead of at their next lease renewal. Called after ``cancel`` with
        the ids it cancelled. The default reaches watchers of this object only (others
        notice by polling, ``cancel_poll``); engines publish on their own notification
        channel (pub/sub, NOTIFY, a subject) to reach every process."""
        if task_ids:
            self.cancel_feed.push(task_ids)

    async def watch_cancels(
        self,
        worker_id: str,
        running: Callable[[], Collection[str]],
        on_cancel: Callable[[builtins.list[str]], None],
    ) -> None:
        """Run until cancelled, calling ``on_cancel(ids)`` (on this loop) with the ids among
        ``running()`` (the tasks ``worker_id`` holds now) that were cancelled: as soon as
        a ``signal_cancel`` notification arrives, and every ``cancel_poll`` seconds by
        reading their status. Each id is reported at most once."""
        await watch_cancels(self, running, on_cancel)


class ResultStorage(abc.ABC):
    """Task outcomes, kept until their ``expires_at`` (RESULT_TTL).

    ``put`` (and a task store's ``finish``) refuses a batch holding a result larger than
    ``payload_limit`` with ``PayloadTooLargeError`` before storing any of it; the worker
    checks each result first and fails that task instead (``omniq.queue``).
    """

    _payload_limit: PayloadLimit | None = None

    @property
    def payload_limit(self) -> PayloadLimit:
        """The largest result this store accepts (``PayloadLimit``: the setting, the engine's
        hard limit learnt at connect, the smaller in force); shared with its backend."""
        if self._payload_limit is None:
            self._payload_limit = PayloadLimit(type(self).__name__)
        return self._payload_limit

    @payload_limit.setter
    def payload_limit(self, value: PayloadLimit) -> None:
        self._payload_limit = value

    @abc.abstractmethod
    async def put(self, results: Sequence[TaskResult]) -> None:
        """Store (or replace) results and wake waiters."""

    @abc.abstractmethod
    async def get(self, task_ids: Sequence[str]) -> list[TaskResult | None]:
        """Read results; None for unknown or expired ones."""

    @abc.abstractmethod
    async def wait(self, task_id: str, timeout: float | None) -> TaskResult | None:  # noqa: ASYNC109
        """Return the result as soon as it is stored (woken by the engine's notification,
        not by polling delays), or None after ``timeout`` seconds."""

    @abc.abstractmethod
    async def delete(self, task_ids: Sequence[str]) -> int:
        """Delete results; returns how many existed."""

    @abc.abstractmethod
    async def purge_expired(self) -> int:
        """Delete results past their ``expires_at``; returns how many."""

    async def get_one(self, task_id: str) -> TaskResult | None:
        return (await self.get([task_id]))[0]


CASCADE_REASON = "a dependency did not succeed"
"""The reason in the result of a task cancelled because a dependency failed."""


def cascades(completions: Sequence[Completion], dependency_policy: DependencyPolicy) -> bool:
    """Whether ``complete`` may cancel dependents: only a completion that did not
    succeed does, and only under the ``cancel`` policy (a success never cancels)."""
    return dependency_policy == "cancel" and any(
        c.status != TaskStatus.SUCCESS for c in completions
    )


class ResultRecord(msgspec.Struct, frozen=True):
    """What ``TaskQueueStorage.cancel``/``expire`` store for the tasks they end.

    ``result_store``: where the results go (the atomic path applies when the task store
    holds it itself); ``retention``: seconds the results live (None: kept until
    deleted), giving their ``expires_at``; ``reason``: the message of the
    ``TaskCancelledError`` in a cancelled task's result.
    """

    result_store: ResultStorage
    retention: float | None = None
    reason: str = "cancelled"

    def expires(self, finished_at: float) -> float | None:
        """The ``expires_at`` of a result finished at ``finished_at``."""
        return None if self.retention is None else finished_at + self.retention

    def result(
        self, task: Task, status: TaskStatus, finished_at: float, *, cascaded: bool = False
    ) -> TaskResult:
        """The result of ``task`` ended ``status`` (cancelled or expired) at ``finished_at``:
        error ``TaskExpiredError`` naming its ``expires_at``, or ``TaskCancelledError``
        with ``reason`` (``CASCADE_REASON`` when ``cascaded``); its attempt count and
        queue."""
        if status is TaskStatus.EXPIRED:
            exc: Exception = TaskExpiredError(
                f"task expired at {task.expires_at} before it started"
            )
        else:
            exc = TaskCancelledError(CASCADE_REASON if cascaded else self.reason)
        return TaskResult(
            task_id=task.id,
            status=status,
            error=ErrorInfo.from_exception(exc),
            attempts=task.attempt,
            finished_at=finished_at,
            expires_at=self.expires(finished_at),
            queue=task.queue,
        )

    def results(
        self,
        done: Sequence[Task],
        status: TaskStatus,
        cascaded: Sequence[Task],
        finished_at: float,
    ) -> builtins.list[TaskResult]:
        """The results of one call: ``done`` ended ``status``, ``cascaded`` (the
        report's ``cancelled``) ended cancelled by their dependency."""
        out = [self.result(t, status, finished_at) for t in done]
        out += [self.result(t, TaskStatus.CANCELLED, finished_at, cascaded=True) for t in cascaded]
        return out


class EventStorage(abc.ABC):
    """The lifecycle event log, stored as plain data (never pickled)."""

    async def append_in_transaction(
        self, connection: object, events: Sequence[TaskEvent], *, tasks: TaskQueueStorage
    ) -> bool:
        """Append ``events`` in the caller's transaction on ``connection``, beside the
        tasks ``tasks.enqueue_in_transaction`` wrote there, so they commit or roll back
        together. True when written; False (nothing written) when this event store is not
        in the same database as ``tasks`` (another backend): the caller logs them as
        usual. The default is False."""
        return False

    @abc.abstractmethod
    async def append(self, events: Sequence[TaskEvent]) -> None:
        """Append events."""

    @abc.abstractmethod
    async def query(
        self,
        *,
        task_id: str | None = None,
        types: Sequence[EventType] | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int | None = None,
    ) -> list[TaskEvent]:
        """Events matching all given filters, oldest first (timestamp, then id);
        ``since`` is inclusive, ``until`` exclusive."""

    @abc.abstractmethod
    async def purge(self, *, older_than: float | None = None, keep_last: int | None = None) -> int:
        """Delete events older than an instant and/or all but the newest ``keep_last``;
        returns how many were deleted."""

    @abc.abstractmethod
    async def count(self) -> int:
        """How many events are stored."""


class ScheduleStorage(abc.ABC):
    """Persistent schedules with an atomic claim of due runs."""

    @abc.abstractmethod
    async def put(self, schedules: Sequence[Schedule]) -> None:
        """Create or replace schedules."""

    @abc.abstractmethod
    async def get(self, schedule_id: str) -> Schedule | None:
        """Read one schedule."""

    @abc.abstractmethod
    async def list(self, *, state: ScheduleState | None = None) -> list[Schedule]:
        """All schedules (optionally in one state), ordered by id."""

    @abc.abstractmethod
    async def delete(self, schedule_id: str) -> bool:
        """Delete a schedule; True if it existed."""

    @abc.abstractmethod
    async def pause(self, schedule_id: str) -> Schedule | None:
        """Persistently pause; returns the new state (None if unknown)."""

    @abc.abstractmethod
    async def resume(self, schedule_id: str, *, now: float | None = None) -> Schedule | None:
        """Persistently resume (``Schedule.resumed``); returns the new state."""

    @abc.abstractmethod
    async def claim_due(self, now: float, *, limit: int = 100) -> builtins.list[ScheduleRun]:
        """Atomically advance every active schedule due at ``now`` (``Schedule.advance``)
        and return the runs to fire. A due run is returned to exactly one caller, however
        many schedulers on however many hosts call this at once."""


class Backend(abc.ABC):
    """One engine connection serving the contracts it supports.

    ``tasks``/``results``/``events``/``schedules`` are None where the engine does not
    hold that contract. Use as an async context manager, or call connect/close.
    """

    url: str
    tasks: TaskQueueStorage | None = None
    results: ResultStorage | None = None
    events: EventStorage | None = None
    schedules: ScheduleStorage | None = None
    _payload_limit: PayloadLimit | None = None

    @property
    def payload_limit(self) -> PayloadLimit:
        """The payload limit of this backend's task and result stores (one object)."""
        if self._payload_limit is None:
            self.share_payload_limit(PayloadLimit(type(self).__name__))
        assert self._payload_limit is not None
        return self._payload_limit

    def share_payload_limit(self, limit: PayloadLimit) -> None:
        """Make ``limit`` this backend's, and its task and result stores', limit."""
        self._payload_limit = limit
        if self.tasks is not None:
            self.tasks.payload_limit = limit
        if self.results is not None:
            self.results.payload_limit = limit

    @classmethod
    def default_url(cls, settings: Settings, store: str) -> str | None:
        """Where this backend keeps ``store`` (a ``StoreKind``) when no URL is configured.

        None (the default) means the backend has no embedded default: a URL must be
        configured. ``omniq.storage.store_urls`` asks this for every store.
        """
        return None

    @abc.abstractmethod
    async def connect(self) -> None:
        """Open connections and create/migrate the schema; idempotent."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release connections; idempotent."""

    async def __aenter__(self) -> Backend:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    workers: WorkerRegistry | None = None
    """The live worker processes using this backend's task queue (None where the engine
    keeps no worker registry)."""


class WorkerRegistry(abc.ABC):
    """Which worker processes are alive, and what each is running.

    A worker ``register``s its ``WorkerInfo`` when it starts and again with each lease
    renewal tick (a refresh replaces the entry by id); a clean shutdown ``deregister``s
    it. An entry counts until its ``expires_at`` (the worker's ``last_seen`` plus its
    lease): ``list`` leaves out entries past it, so a worker whose process died drops
    out within one lease without anyone deleting it, and ``purge_expired`` removes such
    entries for good. Every backend object on one store sees the same entries.
    """

    @abc.abstractmethod
    async def register(self, workers: Sequence[WorkerInfo]) -> None:
        """Create or replace the entries of ``workers`` (by id)."""

    @abc.abstractmethod
    async def deregister(self, worker_ids: Sequence[str]) -> int:
        """Delete entries at once (a clean shutdown); returns how many existed."""

    @abc.abstractmethod
    async def list(self, *, now: float | None = None) -> builtins.list[WorkerInfo]:
        """Entries still counting at ``now`` (default: the current time), ordered by id."""

    @abc.abstractmethod
    async def purge_expired(self, *, now: float | None = None) -> int:
        """Delete entries past their ``expires_at`` at ``now``; returns how many. An entry
        refreshed meanwhile is kept (or reappears at its next refresh)."""
