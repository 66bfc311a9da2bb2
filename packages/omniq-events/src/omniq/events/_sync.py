"""Blocking twins of the async logger and processor.

Each holds a ``ThreadPortal`` (``omniq.events.bridge``: an event loop in a helper
thread) and runs the async object there, so it works from plain scripts, from any
thread, and from code that already runs an event loop. Methods keep their names;
exceptions cross the portal with their type and traceback. The hot path (``log`` and
the builders) never crosses the portal: it only touches the thread-safe buffer.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from types import TracebackType
from typing import Any, Literal

import anyio
import anyio.to_thread

from omniq.config import Settings, get_settings
from omniq.models import ErrorInfo, Schedule, TaskEvent, TaskResult
from omniq.storage import Backend, EventStorage

from ._builders import TaskRef
from ._logger import AsyncEventLogger, EventLoggerStats
from ._processor import AsyncEventProcessor, EventHandler, EventTypes, Subscription
from ._report import event_storage_url
from .bridge import ThreadPortal

__all__ = ["EventLogger", "EventProcessor"]


class _SyncBase:
    _portal: ThreadPortal

    def close(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def __enter__(self) -> Any:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Literal[False]:
        self.close()
        return False

    async def __aenter__(self) -> Any:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Literal[False]:
        # Closing blocks while the buffer drains: keep the caller's own loop free.
        await anyio.to_thread.run_sync(self.close)
        return False


class EventLogger(_SyncBase):
    """Blocking twin of ``AsyncEventLogger``; same arguments and method names.

    The background writer starts at construction (no portal thread at all when the
    logger is disabled); ``close()`` or leaving a ``with`` block drains and stops it.
    Pass a ``Backend`` with ``owns_backend=True`` to have it connected and closed on
    the portal's loop, where the logger uses it.
    """

    def __init__(self, storage: EventStorage | Backend | str | None = None, **options: Any) -> None:
        self._async = AsyncEventLogger(storage, **options)
        self._portal = ThreadPortal()
        self._cm: contextlib.AbstractContextManager[AsyncEventLogger] | None = None
        if self._async.enabled:
            self._cm = self._portal.portal.wrap_async_context_manager(self._async)
            try:
                self._cm.__enter__()
            except BaseException:
                self._portal.close()
                raise

    @classmethod
    def from_settings(cls, settings: Settings | None = None, **options: Any) -> EventLogger:
        """See ``AsyncEventLogger.from_settings``."""
        s = settings if settings is not None else get_settings()
        options.setdefault("buffer_size", s.event_buffer_size)
        options.setdefault("retention_seconds", s.event_retention_seconds)
        options.setdefault("retention_count", s.event_retention_count)
        return cls(event_storage_url(s), **options)

    @property
    def async_logger(self) -> AsyncEventLogger:
        """The wrapped async logger (runs on the portal's loop)."""
        return self._async

    @property
    def enabled(self) -> bool:
        return self._async.enabled

    @property
    def stats(self) -> EventLoggerStats:
        return self._async.stats

    def disable(self) -> None:
        self._async.disable()

    def enable(self) -> None:
        self._async.enable()

    def log(self, event: TaskEvent) -> None:
        """Buffer one event (O(1), never blocks, never raises)."""
        self._async.log(event)

    def log_many(self, events: Iterable[TaskEvent]) -> None:
        self._async.log_many(events)

    def enqueued(self, task: TaskRef, **extra: Any) -> None:
        self._async.enqueued(task, **extra)

    def executing(
        self, task: TaskRef, worker_id: str | None = None, attempt: int | None = None, **extra: Any
    ) -> None:
        self._async.executing(task, worker_id, attempt, **extra)

    def complete(
        self,
        task: TaskRef | TaskResult,
        worker_id: str | None = None,
        attempt: int | None = None,
        duration: float | None = None,
        **extra: Any,
    ) -> None:
        self._async.complete(task, worker_id, attempt, duration, **extra)

    def error(
        self,
        task: TaskRef,
        error: BaseException | ErrorInfo | str | None = None,
        worker_id: str | None = None,
        attempt: int | None = None,
        duration: float | None = None,
        **extra: Any,
    ) -> None:
        self._async.error(task, error, worker_id, attempt, duration, **extra)

    def retry(
        self,
        task: TaskRef,
        error: BaseException | ErrorInfo | str | None = None,
        eta: float | None = None,
        attempt: int | None = None,
        *,
        delay: float | None = None,
        worker_id: str | None = None,
        **extra: Any,
    ) -> None:
        self._async.retry(task, error, eta, attempt, delay=delay, worker_id=worker_id, **extra)

    def cancelled(self, task: TaskRef, reason: str | None = None, **extra: Any) -> None:
        self._async.cancelled(task, reason, **extra)

    def expired(self, task: TaskRef, **extra: Any) -> None:
        self._async.expired(task, **extra)

    def schedule_paused(self, schedule: Schedule | str, **extra: Any) -> None:
        self._async.schedule_paused(schedule, **extra)

    def schedule_resumed(self, schedule: Schedule | str, **extra: Any) -> None:
        self._async.schedule_resumed(schedule, **extra)

    def queue_paused(self, queue: str, **extra: Any) -> None:
        self._async.queue_paused(queue, **extra)

    def queue_resumed(self, queue: str, **extra: Any) -> None:
        self._async.queue_resumed(queue, **extra)

    def flush(self) -> None:
        """Block until every event logged before the call is written (or dropped)."""
        if self._cm is not None:
            self._portal.portal.call(self._async.flush)

    def purge(self, *, older_than: float | None = None, keep_last: int | None = None) -> int:
        """Apply retention now (see ``AsyncEventLogger.purge``)."""
        if self._cm is None:
            return 0
        return self._portal.portal.call(
            lambda: self._async.purge(older_than=older_than, keep_last=keep_last)
        )

    def close(self) -> None:
        """Drain the buffer, stop the writer and the portal thread; idempotent."""
        cm, self._cm = self._cm, None
        try:
            if cm is not None:
                cm.__exit__(None, None, None)
        finally:
            self._portal.close()

    def __enter__(self) -> EventLogger:
        return self

    async def __aenter__(self) -> EventLogger:
        return self


class EventProcessor(_SyncBase):
    """Blocking twin of ``AsyncEventProcessor``; same arguments and method names.

    ``start()`` (or entering a ``with`` block) follows the log in the portal's thread
    and calls the subscribed handlers there; ``tail``/``replay`` are blocking iterators.
    ``logger`` may be an ``EventLogger`` or ``AsyncEventLogger``.
    """

    def __init__(
        self,
        storage: EventStorage | Backend | str,
        *,
        logger: EventLogger | AsyncEventLogger | None = None,
        **options: Any,
    ) -> None:
        alogger = logger.async_logger if isinstance(logger, EventLogger) else logger
        self._async = AsyncEventProcessor(storage, logger=alogger, **options)
        self._portal = ThreadPortal()
        self._cm: contextlib.AbstractContextManager[AsyncEventProcessor] | None = None

    @property
    def async_processor(self) -> AsyncEventProcessor:
        return self._async

    @property
    def handled(self) -> int:
        return self._async.handled

    @property
    def handler_errors(self) -> int:
        return self._async.handler_errors

    def subscribe(self, handler: EventHandler, types: EventTypes = None) -> Subscription:
        return self._async.subscribe(handler, types)

    def unsubscribe(self, subscription: Subscription) -> None:
        self._async.unsubscribe(subscription)

    def dispatch(self, event: TaskEvent) -> int:
        return self._portal.portal.call(self._async.dispatch, event)

    def query(
        self,
        *,
        task_id: str | None = None,
        types: EventTypes = None,
        since: float | None = None,
        until: float | None = None,
        limit: int | None = None,
    ) -> list[TaskEvent]:
        return self._portal.portal.call(
            lambda: self._async.query(
                task_id=task_id, types=types, since=since, until=until, limit=limit
            )
        )

    def history(self, task_id: str) -> list[TaskEvent]:
        return self._portal.portal.call(self._async.history, task_id)

    def replay(
        self,
        since: float | None = None,
        until: float | None = None,
        *,
        types: EventTypes = None,
        task_id: str | None = None,
    ) -> Iterator[TaskEvent]:
        return self._portal.portal.iterate(
            self._async.replay(since, until, types=types, task_id=task_id)
        )

    def replay_to_handlers(
        self,
        since: float | None = None,
        until: float | None = None,
        *,
        types: EventTypes = None,
        task_id: str | None = None,
    ) -> int:
        return self._portal.portal.call(
            lambda: self._async.replay_to_handlers(since, until, types=types, task_id=task_id)
        )

    def tail(
        self,
        since: float | None = None,
        *,
        types: EventTypes = None,
        task_id: str | None = None,
    ) -> Iterator[TaskEvent]:
        """Blocking live iterator; close it (or break out) to stop."""
        return self._portal.portal.iterate(self._async.tail(since, types=types, task_id=task_id))

    def start(self, since: float | None = None) -> None:
        """Follow the log from ``since`` (default: now) and dispatch in the background."""
        if self._cm is not None:
            return
        self._cm = self._portal.portal.wrap_async_context_manager(_Running(self._async, since))
        self._cm.__enter__()

    def close(self) -> None:
        """Stop following the log and the portal thread; idempotent."""
        cm, self._cm = self._cm, None
        try:
            if cm is not None:
                cm.__exit__(None, None, None)
        finally:
            self._portal.close()

    def __enter__(self) -> EventProcessor:
        self.start()
        return self

    async def __aenter__(self) -> EventProcessor:
        await anyio.to_thread.run_sync(self.start)
        return self


class _Running(contextlib.AbstractAsyncContextManager[AsyncEventProcessor]):
    def __init__(self, processor: AsyncEventProcessor, since: float | None) -> None:
        self._p = processor
        self._since = since

    async def __aenter__(self) -> AsyncEventProcessor:
        await self._p.start(self._since)
        return self._p

    async def __aexit__(self, *exc: object) -> None:
        await self._p.aclose()
