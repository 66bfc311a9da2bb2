"""AsyncEventLogger: non-blocking lifecycle event logging with batched writes.

The hot path (``log`` and the builders) only appends to a bounded in-memory buffer: no
await, no I/O, callable from any thread. A background task writes the buffer to the
event store in batches when ``batch_size`` events are waiting or every
``flush_interval`` seconds, retries a failing batch a bounded number of times with
backoff and then drops it (counted), and applies retention periodically. Nothing the
store does can block or fail the caller of ``log``.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal

import anyio
from anyio.abc import TaskGroup, TaskStatus

from omniq.config import Settings, get_settings
from omniq.models import ConfigError, ErrorInfo, Schedule, TaskEvent, TaskResult, now, settings
from omniq.storage import Backend, EventStorage, open_storage

from ._buffer import DropPolicy, EventBuffer
from ._builders import (
    TaskRef,
    cancelled_event,
    complete_event,
    enqueued_event,
    error_event,
    executing_event,
    expired_event,
    queue_paused_event,
    queue_resumed_event,
    retry_event,
    schedule_paused_event,
    schedule_resumed_event,
)
from ._report import RateLimiter, event_storage_url, get_library_logger

__all__ = ["AsyncEventLogger", "EventLoggerStats", "EventsListener"]

EventsListener = Callable[[Sequence[TaskEvent]], None]
"""Called on the logger's event loop with each batch right after it was stored."""

_log = get_library_logger()


@dataclass(frozen=True)
class EventLoggerStats:
    """A snapshot of the logger's counters.

    ``logged``: events accepted into the buffer. ``written``: events the store accepted.
    ``dropped_full``: events lost because the buffer was full (drop policy).
    ``dropped_failed``: events lost because their batch failed every write attempt.
    ``failed_flushes``: batches given up on. ``write_errors``: failed append calls,
    retries included. ``purged``: events deleted by retention.
    """

    enabled: bool
    drop_policy: DropPolicy
    buffered: int
    logged: int
    written: int
    dropped_full: int
    dropped_failed: int
    failed_flushes: int
    write_errors: int
    purged: int
    purge_errors: int

    @property
    def dropped(self) -> int:
        """All events lost, for whatever reason."""
        return self.dropped_full + self.dropped_failed


class AsyncEventLogger:
    """Records task lifecycle events without ever slowing or failing the task path.

    Give it an ``EventStorage`` (or a ``Backend`` whose ``events`` it uses). With no
    storage, or ``enabled=False``, it is a no-op: ``enabled`` is False and every logging
    call returns at once. Use it as an async context manager (``async with``), which
    starts the background writer and, on exit, drains the buffer.

    Drop policy: a full buffer drops the **newest** event by default (the one being
    logged), keeping the already-buffered history contiguous; ``drop_policy="oldest"``
    evicts the oldest waiting event instead, keeping the most recent state. Either way
    the loss is counted in ``stats`` and reported (rate-limited) through the
    ``omniq.events`` library logger.

    Retention: every ``retention_interval`` seconds the writer deletes events older
    than ``retention_seconds`` and/or all but the newest ``retention_count`` (0 turns a
    limit off); ``purge()`` applies it on demand.
    """

    def __init__(
        self,
        storage: EventStorage | Backend | str | None = None,
        *,
        enabled: bool = True,
        buffer_size: int = settings.EVENT_BUFFER_SIZE,
        batch_size: int = 500,
        flush_interval: float = 0.5,
        drop_policy: DropPolicy = "newest",
        retention_seconds: float = settings.EVENT_RETENTION_SECONDS,
        retention_count: int = settings.EVENT_RETENTION_COUNT,
        retention_interval: float = 60.0,
        max_retries: int = 3,
        retry_backoff: float = 0.05,
        retry_max_backoff: float = 2.0,
        write_timeout: float = 30.0,
        report_interval: float = 10.0,
        owns_backend: bool = False,
    ) -> None:
        if batch_size < 1:
            raise ConfigError("batch_size", batch_size, "an int >= 1")
        if retention_seconds < 0 or retention_count < 0:
            raise ConfigError(
                "retention", (retention_seconds, retention_count), "limits >= 0 (0 = no limit)"
            )
        backend: Backend | None = None
        if isinstance(storage, str):  # a URL: open (and own) the backend it names
            storage = open_storage(storage) if storage else None
            owns_backend = True
        if isinstance(storage, Backend):
            backend, storage = storage, storage.events
        self._backend = backend
        self._owns_backend = owns_backend and backend is not None
        # A Backend may only expose ``events`` once connected: resolved again on start.
        self._storage: EventStorage | None = storage
        self._disabled = not enabled or (storage is None and backend is None)
        self._buffer = EventBuffer(buffer_size, drop_policy)
        self._batch_size = min(batch_size, buffer_size)
        self._flush_interval = flush_interval
        self.retention_seconds = retention_seconds
        self.retention_count = retention_count
        self._retention_interval = retention_interval
        self._max_retries = max(0, max_retries)
        self._retry_backoff = retry_backoff
        self._retry_max_backoff = retry_max_backoff
        self._write_timeout = write_timeout
        self._reporter = RateLimiter(report_interval)
        self._listeners: list[EventsListener] = []

        self._written = 0
        self._dropped_failed = 0
        self._failed_flushes = 0
        self._write_errors = 0
        self._purged = 0
        self._purge_errors = 0
        self._store_failing = False
        self._last_error: BaseException | None = None
        self._reported = (0, 0, 0)

        self._loop: asyncio.AbstractEventLoop | None = None
        self._tg: TaskGroup | None = None
        self._wake: anyio.Event | None = None
        self._flush_lock: anyio.Lock | None = None
        self._closing = False
        self._closed = False

    @classmethod
    def from_settings(cls, settings: Settings | None = None, **options: Any) -> AsyncEventLogger:
        """A logger configured from ``omniq.config`` settings (default: the environment).

        ``EVENT_STORAGE_TYPE`` empty means event logging is disabled (a no-op logger);
        otherwise the store ``omniq.storage.event_store_url`` names (the one ``OmniQ``
        uses with these settings), which the logger opens and owns. ``options`` override the
        buffer and retention settings.
        """
        s = settings if settings is not None else get_settings()
        options.setdefault("buffer_size", s.event_buffer_size)
        options.setdefault("retention_seconds", s.event_retention_seconds)
        options.setdefault("retention_count", s.event_retention_count)
        return cls(event_storage_url(s), **options)

    # -- state -------------------------------------------------------------------------

    @property
    def enabled(self) -> bool:
        """False when there is no event storage, logging was disabled, or after close."""
        return not self._disabled

    @property
    def storage(self) -> EventStorage | None:
        return self._storage

    @property
    def stats(self) -> EventLoggerStats:
        b = self._buffer
        return EventLoggerStats(
            enabled=not self._disabled,
            drop_policy=b.policy,
            buffered=len(b),
            logged=b.accepted,
            written=self._written,
            dropped_full=b.dropped,
            dropped_failed=self._dropped_failed,
            failed_flushes=self._failed_flushes,
            write_errors=self._write_errors,
            purged=self._purged,
            purge_errors=self._purge_errors,
        )

    def disable(self) -> None:
        """Stop recording: later logging calls return at once (buffered events stay)."""
        self._disabled = True

    def enable(self) -> None:
        """Record again after ``disable`` (only if there is a storage and not closed)."""
        self._disabled = self._storage is None or self._closed

    def add_listener(self, listener: EventsListener) -> None:
        """Call ``listener(batch)`` on the logger's loop after each batch is stored.

        Listeners must be quick and must not raise (errors are logged and ignored);
        ``AsyncEventProcessor`` uses this to see new events without waiting for a poll.
        """
        self._listeners.append(listener)

    def remove_listener(self, listener: EventsListener) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    # -- hot path ----------------------------------------------------------------------

    def log(self, event: TaskEvent) -> None:
        """Buffer one event for writing. O(1), never blocks, never raises, any thread."""
        if self._disabled:
            return
        if self._buffer.put(event) == self._batch_size:
            self._wake_threadsafe()

    def log_many(self, events: Iterable[TaskEvent]) -> None:
        """Buffer events in order (same guarantees as ``log``)."""
        if self._disabled:
            return
        before, after = self._buffer.put_many(events)
        if before < self._batch_size <= after:
            self._wake_threadsafe()

    def _wake_threadsafe(self) -> None:
        loop = self._loop
        if loop is None:
            return
        if threading.get_ident() == self._loop_thread:
            self._set_wake()
            return
        # A closed loop raises RuntimeError: then the interval or close() drains.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(self._set_wake)

    def _set_wake(self) -> None:
        if self._wake is not None:
            self._wake.set()

    # -- builders (each is a no-op when disabled) ----------------------------------------

    def enqueued(self, task: TaskRef, **extra: Any) -> None:
        """Log ENQUEUED for a stored task."""
        if not self._disabled:
            self.log(enqueued_event(task, **extra))

    def executing(
        self, task: TaskRef, worker_id: str | None = None, attempt: int | None = None, **extra: Any
    ) -> None:
        """Log EXECUTING when a worker starts an attempt."""
        if not self._disabled:
            self.log(executing_event(task, worker_id, attempt, **extra))

    def complete(
        self,
        task: TaskRef | TaskResult,
        worker_id: str | None = None,
        attempt: int | None = None,
        duration: float | None = None,
        **extra: Any,
    ) -> None:
        """Log COMPLETE for a successful task."""
        if not self._disabled:
            self.log(complete_event(task, worker_id, attempt, duration, **extra))

    def error(
        self,
        task: TaskRef,
        error: BaseException | ErrorInfo | str | None = None,
        worker_id: str | None = None,
        attempt: int | None = None,
        duration: float | None = None,
        **extra: Any,
    ) -> None:
        """Log ERROR for a task that failed for good."""
        if not self._disabled:
            self.log(error_event(task, error, worker_id, attempt, duration, **extra))

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
        """Log RETRY for a failed attempt that will run again."""
        if not self._disabled:
            event = retry_event(
                task, error, eta, attempt, delay=delay, worker_id=worker_id, **extra
            )
            self.log(event)

    def cancelled(self, task: TaskRef, reason: str | None = None, **extra: Any) -> None:
        """Log CANCELLED."""
        if not self._disabled:
            self.log(cancelled_event(task, reason, **extra))

    def expired(self, task: TaskRef, **extra: Any) -> None:
        """Log EXPIRED for a task whose TTL passed before it started."""
        if not self._disabled:
            self.log(expired_event(task, **extra))

    def schedule_paused(self, schedule: Schedule | str, **extra: Any) -> None:
        """Log SCHEDULE_PAUSED."""
        if not self._disabled:
            self.log(schedule_paused_event(schedule, **extra))

    def schedule_resumed(self, schedule: Schedule | str, **extra: Any) -> None:
        """Log SCHEDULE_RESUMED."""
        if not self._disabled:
            self.log(schedule_resumed_event(schedule, **extra))

    def queue_paused(self, queue: str, **extra: Any) -> None:
        """Log QUEUE_PAUSED."""
        if not self._disabled:
            self.log(queue_paused_event(queue, **extra))

    def queue_resumed(self, queue: str, **extra: Any) -> None:
        """Log QUEUE_RESUMED."""
        if not self._disabled:
            self.log(queue_resumed_event(queue, **extra))

    # -- writing -------------------------------------------------------------------------

    async def flush(self) -> None:
        """Write every event logged before this call (or drop it after the retries).

        Returns once those events have left the buffer; never raises for store errors
        (they are counted in ``stats``).
        """
        if self._storage is None and self._backend is not None:
            self._storage = self._backend.events
        if self._storage is None:
            return
        await self._drain(self._buffer.accepted)
        self._report()

    async def _drain(self, target: int) -> None:
        if self._flush_lock is None:
            self._flush_lock = anyio.Lock()
        async with self._flush_lock:
            while self._buffer.removed < target:
                batch = self._buffer.take(self._batch_size)
                if not batch:
                    break
                await self._write_batch(batch)

    async def _write_batch(self, batch: list[TaskEvent]) -> None:
        assert self._storage is not None
        # After a batch failed every attempt, the next gets one probe only, so draining
        # a buffer into a dead store costs one attempt per batch, not a backoff series.
        attempts = 1 if self._store_failing else 1 + self._max_retries
        delay = self._retry_backoff
        for attempt in range(attempts):
            try:
                with anyio.fail_after(self._write_timeout):
                    await self._storage.append(batch)
            except Exception as exc:  # any store failure is counted, never raised
                self._write_errors += 1
                self._last_error = exc
                if attempt + 1 < attempts:
                    await anyio.sleep(delay)
                    delay = min(delay * 2, self._retry_max_backoff)
                continue
            self._written += len(batch)
            self._store_failing = False
            for listener in list(self._listeners):
                try:
                    listener(batch)
                except Exception:
                    _log.exception("event listener %r failed", listener)
            return
        self._store_failing = True
        self._failed_flushes += 1
        self._dropped_failed += len(batch)

    def _report(self, *, force: bool = False) -> None:
        current = (self._buffer.dropped, self._dropped_failed, self._failed_flushes)
        if current == self._reported or not self._reporter.ready(force=force):
            return
        full, failed, flushes = (c - r for c, r in zip(current, self._reported, strict=True))
        self._reported = current
        if full:
            _log.warning(
                "event buffer full (%d events): dropped %d %s events since last report "
                "(%d in total)",
                self._buffer.maxsize,
                full,
                self._buffer.policy,
                current[0],
            )
        if flushes:
            _log.warning(
                "event store write failed: dropped %d events in %d batches after retries "
                "since last report (%d in total); last error: %r",
                failed,
                flushes,
                current[1],
                self._last_error,
            )

    # -- retention -----------------------------------------------------------------------

    @property
    def retention_enabled(self) -> bool:
        return self.retention_seconds > 0 or self.retention_count > 0

    async def purge(self, *, older_than: float | None = None, keep_last: int | None = None) -> int:
        """Delete old events now; returns how many were deleted.

        Without arguments, applies the configured retention (age and/or count). Store
        errors propagate here, since the caller asked for the purge.
        """
        if self._storage is None and self._backend is not None:
            self._storage = self._backend.events
        if self._storage is None:
            return 0
        if older_than is None and keep_last is None:
            if self.retention_seconds > 0:
                older_than = now() - self.retention_seconds
            if self.retention_count > 0:
                keep_last = self.retention_count
            if older_than is None and keep_last is None:
                return 0
        n = await self._storage.purge(older_than=older_than, keep_last=keep_last)
        self._purged += n
        return n

    async def _purge_quietly(self) -> None:
        try:
            await self.purge()
        except Exception:
            self._purge_errors += 1
            if self._reporter.ready():
                _log.warning("event retention purge failed", exc_info=True)

    # -- lifecycle -----------------------------------------------------------------------

    async def _run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._wake = wake = anyio.Event()
        task_status.started()
        next_purge = anyio.current_time() if self.retention_enabled else math.inf
        while not self._closing:
            timeout = max(0.0, min(self._flush_interval, next_purge - anyio.current_time()))
            if len(self._buffer) < self._batch_size:
                with anyio.move_on_after(timeout):
                    await wake.wait()
            if wake.is_set():
                self._wake = wake = anyio.Event()
            await self._drain(self._buffer.accepted)
            self._report()
            if self.retention_enabled and anyio.current_time() >= next_purge:
                await self._purge_quietly()
                next_purge = anyio.current_time() + self._retention_interval

    async def start(self) -> None:
        """Connect an owned backend and start the background writer (``async with`` does
        this); must be followed by ``aclose()`` in the same task."""
        if self._tg is not None or self._closed:
            return
        if self._owns_backend and self._backend is not None:
            await self._backend.connect()
        if self._backend is not None:
            self._storage = self._backend.events
        if self._storage is None:
            self._disabled = True
            return
        self._flush_lock = anyio.Lock()
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        await self._tg.start(self._run)

    async def aclose(self) -> None:
        """Stop the writer, drain the buffer, report, and close an owned backend.

        Afterwards the logger is disabled: later logging calls are no-ops.
        """
        if self._closed:
            return
        self._closing = True
        try:
            if self._tg is not None:
                self._set_wake()
                tg, self._tg = self._tg, None
                await tg.__aexit__(None, None, None)
            await self.flush()
            self._report(force=True)
        finally:
            self._closed = True
            self._disabled = True
            self._loop = None
            if self._owns_backend and self._backend is not None:
                await self._backend.close()

    async def __aenter__(self) -> AsyncEventLogger:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Literal[False]:
        await self.aclose()
        return False

    _loop_thread: int = -1
