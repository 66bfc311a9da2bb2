"""AsyncTaskQueue: enqueue, inspect and cancel tasks; record outcomes as results and events."""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any

import msgspec

from omniq.config import Settings
from omniq.events import (
    AsyncEventLogger,
    cancelled_event,
    enqueued_event,
    expired_event,
)
from omniq.models import (
    Progress,
    Task,
    TaskEvent,
    TaskResult,
    TaskStatus,
    now,
    validate_task,
    validate_task_id,
)
from omniq.serialization import SerializationManager
from omniq.storage import (
    CASCADE_REASON,
    CompletionReport,
    DependencyPolicy,
    ResultRecord,
    ResultStorage,
    TaskQueueStorage,
)

from ._breaker import BreakerRegistry
from ._build import TaskSpec, build_task
from ._coalesce import Coalescer
from ._deps import DependencyResolver
from ._retry import RetryManager, RetryPolicy
from ._source import QueueWorkerSource
from ._tracing import tracing_for
from ._ttl import TTLManager
from ._workflow import expand

__all__ = ["AsyncTaskQueue"]

_log = logging.getLogger("omniq.queue")


class AsyncTaskQueue:
    """The async core of OmniQ's queue, over one task store, an optional result store and
    an optional event logger.

    Every terminal path (success, error, timeout, crash, expiry, cancellation) ends in a
    stored TaskResult and an event; the worker side lives in ``worker_source()``.
    Storage objects are used as given: whoever opened them closes them.
    """

    def __init__(
        self,
        tasks: TaskQueueStorage,
        results: ResultStorage | None = None,
        events: AsyncEventLogger | None = None,
        *,
        settings: Settings | None = None,
        serializer: SerializationManager | None = None,
        retry: RetryManager | None = None,
        breakers: BreakerRegistry | None = None,
    ) -> None:
        self.settings = settings or Settings()
        s = self.settings
        self.tasks = tasks
        self.results = results
        self.events = events
        # The stores refuse records over min(this setting, the engine's own limit).
        tasks.payload_limit.setting = s.max_payload_bytes
        if results is not None:
            results.payload_limit.setting = s.max_payload_bytes
        self.serializer = serializer or SerializationManager.from_settings(s)
        self.retry = retry or RetryManager(
            RetryPolicy(
                max_retries=s.retry_attempts, base_delay=s.retry_delay, max_delay=s.retry_max_delay
            )
        )
        self.breakers = breakers or BreakerRegistry()
        self.tracer = tracing_for(s)
        """OpenTelemetry spans (the ``tracing`` setting), or None."""
        self.resolver = DependencyResolver(tasks.get)
        self.dependency_policy: DependencyPolicy = (
            "release" if s.dependency_failure_policy == "release" else "cancel"
        )
        self.ttl = TTLManager(
            tasks,
            results,
            self.log_expired,
            dependency_policy=self.dependency_policy,
            task_retention=s.result_ttl,
            result_record=self.result_record(),
        )
        self._coalescer = Coalescer(
            self._store_plain, lambda t: self.tasks.payload_limit.check_tasks((t,))
        )

    # -- building and enqueueing -----------------------------------------------------------

    def build(
        self,
        func: TaskSpec,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> Task:
        """A Task for ``func(*args, **kwargs)`` with the configured defaults (not stored)."""
        return build_task(self.serializer, self.settings, func, args, kwargs, **options)

    async def enqueue(
        self,
        func: TaskSpec | Task,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> Task:
        """Store one task; returns it as stored (an existing live task for a reused key)."""
        if isinstance(func, Task):
            return (await self.enqueue_many([func]))[0]
        task = self.build(func, args, kwargs, **options)
        return (await self.enqueue_many([task], validated=True))[0]

    async def enqueue_many(
        self, tasks: Iterable[Task], *, validated: bool = False, connection: object | None = None
    ) -> list[Task]:
        """Store a batch in one storage call (plus one read per dependency level when the
        batch depends on stored tasks, for cycle detection); Redis and NATS split a large
        one into pieces (docs/guarantees.md, "Enqueue"). Returns them as stored, in
        order. Raises DependencyCycleError, or PayloadTooLargeError naming the task,
        before storing anything. Raises InvalidTaskError for a task outside the documented
        bounds (hand-built Tasks do not pass through ``build``); ``validated=True`` says
        every task already passed ``build_task`` or ``validate_task`` and skips the check.
        ``connection``: the caller's open database connection; the tasks are written in
        its transaction (``TaskQueueStorage.enqueue_in_transaction``)."""
        given_batch = list(tasks) if validated else [validate_task(t) for t in tasks]
        if not given_batch:
            return []
        # Follow-ups are stored now, as conditional dependents (queue/_workflow.py).
        batch, parent_of = expand(given_batch)
        store: Callable[[list[Task]], Awaitable[list[Task]]]
        if connection is None and len(batch) == 1 and not batch[0].depends_on:
            store = self._single  # concurrent single enqueues share a storage call
        else:
            store = functools.partial(
                self._store, given=given_batch, parent_of=parent_of, connection=connection
            )
        if self.tracer is not None:
            return await self.tracer.enqueue(batch, store)
        return await store(batch)

    async def _single(self, batch: list[Task]) -> list[Task]:
        return [await self._coalescer.enqueue(batch[0])]

    async def _store_plain(self, batch: list[Task]) -> list[Task]:
        """Store tasks without follow-ups or dependencies (the coalescer's batches):
        ``_store`` without the steps such tasks never need."""
        stored = await self.tasks.enqueue(batch, dependency_policy=self.dependency_policy)
        if self.events is not None and self.events.enabled:
            self._log(self._enqueued_events(batch, stored))
        return stored

    async def _store(
        self,
        batch: list[Task],
        *,
        given: list[Task],
        parent_of: dict[str, str],
        connection: object | None = None,
    ) -> list[Task]:
        """Store ``batch`` (the caller's tasks ``given``, follow-ups expanded after them);
        returns the caller's tasks as stored."""
        n = len(given)
        # Only a task with dependencies can be stored already cancelled: the store writes
        # its result in the enqueue's step.
        deps = any(t.depends_on for t in batch)
        record = self.result_record() if deps else None
        store: Callable[..., Awaitable[list[Task]]] = self.tasks.enqueue
        if connection is not None:
            store = functools.partial(self.tasks.enqueue_in_transaction, connection)
            if record is not None:
                store = functools.partial(store, record=record)
        elif record is not None:
            store = functools.partial(self.tasks.enqueue_with_results, record=record)
        if deps:
            await self.resolver.check(batch)
            ordered = DependencyResolver.order(batch)
            stored_ordered = await store(ordered, dependency_policy=self.dependency_policy)
            by_id = {t.id: s for t, s in zip(ordered, stored_ordered, strict=True)}
            stored = [by_id[t.id] for t in batch]
        else:
            stored = await store(batch, dependency_policy=self.dependency_policy)
        events: list[TaskEvent] = []
        if self.events is not None and self.events.enabled:
            events = self._enqueued_events(batch, stored)
        if connection is not None and events:
            events = await self._events_in_transaction(connection, events)
        self._log(events)
        if parent_of:
            # A parent an idempotency key replaced never runs: its follow-ups go.
            replaced = {t.id for t, got in zip(batch[:n], stored, strict=False) if got.id != t.id}
            orphans = [f for f, p in parent_of.items() if p in replaced]
            if orphans:
                await self.cancel(orphans)
            # The caller sees its tasks with the follow-ups it gave them.
            orig = {t.id: t for t in given}
            return [
                msgspec.structs.replace(got, on_success=t.on_success, on_failure=t.on_failure)
                if (t := orig.get(got.id)) is not None
                else got
                for got in stored[:n]
            ]
        return stored[:n]

    @staticmethod
    def _enqueued_events(batch: list[Task], stored: list[Task]) -> list[TaskEvent]:
        """The events of an enqueue: one ``enqueued`` per task stored (not for an
        existing task returned for its key), then the ``cancelled`` of those stored
        already cancelled."""
        events: list[TaskEvent] = []
        cancelled: list[TaskEvent] = []
        for sent, got in zip(batch, stored, strict=True):
            if got.id != sent.id:
                continue  # idempotency key: an existing live task was returned
            events.append(enqueued_event(got))
            if got.status is TaskStatus.CANCELLED:  # a dependency had already failed
                cancelled.append(cancelled_event(got, CASCADE_REASON))
        return events + cancelled

    async def _events_in_transaction(
        self, connection: object, events: list[TaskEvent]
    ) -> list[TaskEvent]:
        """The enqueued events of a transactional enqueue go in the same transaction
        when the event store is the task store's backend (then none are left to log);
        otherwise they are left to the logger."""
        storage = self.events.storage if self.events is not None else None
        if storage is not None and await storage.append_in_transaction(
            connection, events, tasks=self.tasks
        ):
            return []
        return events

    # -- reading ---------------------------------------------------------------------------

    def decode(self, result: TaskResult) -> TaskResult:
        """``result`` with ``value`` decoded from its payload."""
        if result.payload is None or result.value is not None:
            return result
        return msgspec.structs.replace(result, value=self.serializer.loads(result.payload))

    async def get_result(
        self,
        task_id: str,
        *,
        wait: bool = False,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> TaskResult | None:
        """The task's result with its value decoded; with ``wait``, block until it exists
        (or ``timeout`` seconds pass, then None). An id that breaks the task id rules
        raises InvalidTaskError."""
        validate_task_id(task_id)
        if self.results is None:
            return None
        if wait:
            result = await self.results.wait(task_id, timeout)
        else:
            result = await self.results.get_one(task_id)
        return None if result is None else self.decode(result)

    async def get_results(self, task_ids: Sequence[str]) -> list[TaskResult | None]:
        """Several results in one round trip, values decoded."""
        for tid in task_ids:
            validate_task_id(tid)
        if self.results is None:
            return [None] * len(task_ids)
        return [None if r is None else self.decode(r) for r in await self.results.get(task_ids)]

    async def get_task(self, task_id: str) -> Task | None:
        """The task with its current status and attempt count (None if unknown)."""
        validate_task_id(task_id)
        return await self.tasks.get_one(task_id)

    async def list_tasks(
        self,
        *,
        queue: str | None = None,
        status: TaskStatus | str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[Task]:
        """Tasks in creation order, filtered by queue and status."""
        st = TaskStatus(status) if status is not None else None
        return await self.tasks.list(queue=queue, status=st, limit=limit, offset=offset)

    async def counts(self) -> dict[tuple[str, TaskStatus], int]:
        """Task counts by (queue, status)."""
        return await self.tasks.counts()

    async def get_progress(self, task_ids: Sequence[str]) -> list[Progress | None]:
        """The last progress each task recorded (None where there is none)."""
        return await self.tasks.get_progress(task_ids)

    # -- cancelling ------------------------------------------------------------------------

    async def cancel(self, task_id: str | Sequence[str]) -> list[str]:
        """Cancel tasks that have not finished; returns the ids actually cancelled.

        A running task's lease is revoked, so its worker's outcome is discarded, and its
        worker is notified through the store (``signal_cancel``) so it stops the run now.
        The store writes the CANCELLED results of the tasks it ended (these and the
        dependents cancelled per the dependency policy) with the state change
        (``TaskQueueStorage.cancel_with_results``) and releases ``on_failure``
        follow-ups in the same step; the events are logged after it, as a worker's
        completion events are.
        """
        ids = [validate_task_id(t) for t in ([task_id] if isinstance(task_id, str) else task_id)]
        record = self.result_record()
        if record is None:
            report = await self.tasks.cancel(ids, dependency_policy=self.dependency_policy)
        else:
            report = await self.tasks.cancel_with_results(
                ids, record, dependency_policy=self.dependency_policy
            )
        if report.done:
            try:  # tell the workers running them to stop now (else: at their next renewal)
                await self.tasks.signal_cancel(report.done)
            except Exception:
                _log.warning(
                    "notifying workers of %d cancel(s) failed", len(report.done), exc_info=True
                )
        if self.events is not None and self.events.enabled and (report.done or report.cancelled):
            done = [t for t in await self.tasks.get(report.done) if t is not None]
            events = [cancelled_event(t, "cancelled") for t in done]
            events += [cancelled_event(t, CASCADE_REASON) for t in report.cancelled]
            self._log(events)
        return list(report.done)

    # -- recording -------------------------------------------------------------------------

    def _log(self, events: Sequence[TaskEvent]) -> None:
        if events and self.events is not None:
            self.events.log_many(events)

    def result_expiry(self, finished: float) -> float | None:
        """When a result finished at ``finished`` may be forgotten (RESULT_TTL)."""
        ttl = self.settings.result_ttl
        return finished + ttl if ttl > 0 else None

    def result_record(self, reason: str = "cancelled") -> ResultRecord | None:
        """What the store writes for tasks a cancel (with ``reason``) or an expiry ends:
        results in this queue's result store, kept RESULT_TTL (None: no result store)."""
        if self.results is None:
            return None
        ttl = self.settings.result_ttl
        return ResultRecord(self.results, ttl if ttl > 0 else None, reason)

    async def record_cancelled(
        self, tasks: Sequence[Task], reason: str, events: list[TaskEvent] | None = None
    ) -> None:
        """Store CANCELLED results and events for tasks the store cancelled outside a
        cancel or expiry (the cascade of a worker's failure when ``finish`` was given no
        ``ResultRecord``)."""
        record = self.result_record(reason)
        if record is not None and tasks:
            await record.result_store.put(record.results(tasks, TaskStatus.CANCELLED, (), now()))
        evs = events if events is not None else []
        evs.extend(cancelled_event(task, reason) for task in tasks)
        self._log(evs)

    async def record_cascade(self, report: CompletionReport, *, stored: bool = False) -> None:
        """Record the dependents a worker's completion cancelled: their events, and their
        results unless the store wrote them with the completion (``stored``: ``finish``
        was given a ``ResultRecord``)."""
        if not report.cancelled:
            return
        if stored:
            self._log([cancelled_event(task, CASCADE_REASON) for task in report.cancelled])
        else:
            await self.record_cancelled(report.cancelled, CASCADE_REASON)

    async def log_expired(self, tasks: Sequence[Task], report: CompletionReport) -> None:
        """Log the events of an expiry (its results are stored by the store's step):
        EXPIRED for ``tasks``, CANCELLED for the dependents it cancelled."""
        if self.events is None or not self.events.enabled:
            return
        events = [expired_event(task) for task in tasks]
        events += [cancelled_event(task, CASCADE_REASON) for task in report.cancelled]
        self._log(events)

    # -- workers ---------------------------------------------------------------------------

    def worker_source(
        self,
        queues: Sequence[str] | None = None,
        *,
        worker_id: str | None = None,
        lease: float | None = None,
    ) -> QueueWorkerSource:
        """A TaskSource + OutcomeSink for ``omniq.workers`` pools over this queue."""
        return QueueWorkerSource(
            self, queues or [self.settings.default_queue], worker_id=worker_id, lease=lease
        )
