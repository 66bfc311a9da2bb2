"""AsyncEventProcessor: subscribe to, follow, replay and query the event log.

Handlers (sync or async callables) subscribe to event types or to all events. While
the processor runs (``async with``), it follows the log live and calls every matching
handler for each new event. ``tail`` and ``replay`` are also available as async
iterators, and ``query`` reads the log directly.

Following the log polls the store with a (timestamp, id) cursor, backing off while
idle; an in-process ``AsyncEventLogger`` passed as ``logger`` wakes the poll as soon as
it stores a batch. Events are yielded once (ids are remembered across a ``lookback``
window) and late arrivals, events stored after newer ones (a buffered logger on
another host or thread), are still delivered if they are at most ``lookback`` seconds
older than the newest event seen.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Literal

import anyio
from anyio.abc import TaskGroup, TaskStatus

from omniq.models import ConfigError, EventType, TaskEvent, now, redact_url
from omniq.storage import Backend, EventStorage, open_storage

from ._logger import AsyncEventLogger
from ._report import get_library_logger

__all__ = ["AsyncEventProcessor", "EventHandler", "Subscription"]

EventHandler = Callable[[TaskEvent], Awaitable[object] | object]
"""A sync or async callable taking one event."""

EventTypes = EventType | Iterable[EventType] | None

_log = get_library_logger()


def _type_set(types: EventTypes) -> frozenset[EventType] | None:
    if types is None:
        return None
    if isinstance(types, EventType):
        return frozenset((types,))
    return frozenset(EventType(t) for t in types)


def _type_list(types: EventTypes) -> list[EventType] | None:
    s = _type_set(types)
    return None if s is None else sorted(s, key=lambda t: t.value)


@dataclass(eq=False)
class Subscription:
    """A handler bound to event types (``None``: all of them); pass it to
    ``unsubscribe`` to stop it."""

    handler: EventHandler
    types: frozenset[EventType] | None = None
    calls: int = field(default=0)
    errors: int = field(default=0)

    def matches(self, event: TaskEvent) -> bool:
        return self.types is None or event.type in self.types


class AsyncEventProcessor:
    """Reads the event log: subscriptions, live tail, replay and queries.

    ``poll_interval`` is the first wait between polls once caught up, doubled while
    idle up to ``max_poll_interval``. ``lookback`` bounds how late an event may be
    stored (relative to the newest one seen) and still be delivered by ``tail``.
    """

    def __init__(
        self,
        storage: EventStorage | Backend | str,
        *,
        logger: AsyncEventLogger | None = None,
        poll_interval: float = 0.05,
        max_poll_interval: float = 1.0,
        lookback: float = 2.0,
        page_size: int = 1000,
        owns_backend: bool = False,
    ) -> None:
        if isinstance(storage, str):  # a URL: open (and own) the backend it names
            storage = open_storage(storage)
            owns_backend = True
        backend: Backend | None = None
        events: EventStorage | None
        if isinstance(storage, Backend):
            backend, events = storage, storage.events  # may appear only on connect
        else:
            events = storage
        self._backend = backend
        self._owns_backend = owns_backend and backend is not None
        self._events = events
        self._logger = logger
        self._poll_interval = poll_interval
        self._max_poll_interval = max_poll_interval
        self._lookback = lookback
        self._page_size = page_size
        self._subs: list[Subscription] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = -1
        self._wake: anyio.Event | None = None
        self._tg: TaskGroup | None = None
        self.handled = 0
        self.handler_errors = 0

    @property
    def _storage(self) -> EventStorage:
        if self._events is None and self._backend is not None:
            self._events = self._backend.events
        if self._events is None:
            url = self._backend.url if self._backend is not None else None
            raise ConfigError(
                "storage", url and redact_url(url), "a connected backend that stores events"
            )
        return self._events

    @property
    def storage(self) -> EventStorage:
        return self._storage

    # -- subscriptions ---------------------------------------------------------------

    def subscribe(self, handler: EventHandler, types: EventTypes = None) -> Subscription:
        """Call ``handler(event)`` for each new event of ``types`` (default: all types)."""
        sub = Subscription(handler, _type_set(types))
        self._subs = [*self._subs, sub]
        return sub

    def unsubscribe(self, subscription: Subscription) -> None:
        self._subs = [s for s in self._subs if s is not subscription]

    @property
    def subscriptions(self) -> list[Subscription]:
        return list(self._subs)

    async def dispatch(self, event: TaskEvent) -> int:
        """Call every matching handler with ``event``; returns how many ran.

        A handler that raises is logged and counted (``handler_errors``); the others,
        and the processor, carry on.
        """
        ran = 0
        for sub in self._subs:
            if not sub.matches(event):
                continue
            ran += 1
            sub.calls += 1
            try:
                result = sub.handler(event)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                sub.errors += 1
                self.handler_errors += 1
                _log.exception("event handler %r failed on %s", sub.handler, event.id)
        self.handled += 1
        return ran

    # -- reading ---------------------------------------------------------------------

    async def query(
        self,
        *,
        task_id: str | None = None,
        types: EventTypes = None,
        since: float | None = None,
        until: float | None = None,
        limit: int | None = None,
    ) -> list[TaskEvent]:
        """Events matching all filters, oldest first; ``since`` inclusive, ``until`` not."""
        return await self._storage.query(
            task_id=task_id, types=_type_list(types), since=since, until=until, limit=limit
        )

    async def history(self, task_id: str) -> list[TaskEvent]:
        """Every stored event of one task (or schedule), oldest first."""
        return await self._storage.query(task_id=task_id)

    async def replay(
        self,
        since: float | None = None,
        until: float | None = None,
        *,
        types: EventTypes = None,
        task_id: str | None = None,
    ) -> AsyncIterator[TaskEvent]:
        """Yield the stored events of a time range in order, page by page."""
        type_list = _type_list(types)
        lo = since
        edge_ts: float | None = None
        edge_ids: set[str] = set()
        limit = self._page_size
        while True:
            page = await self._storage.query(
                task_id=task_id, types=type_list, since=lo, until=until, limit=limit
            )
            fresh = 0
            for event in page:
                if event.timestamp == edge_ts and event.id in edge_ids:
                    continue
                fresh += 1
                if event.timestamp != edge_ts:
                    edge_ts, edge_ids = event.timestamp, set()
                edge_ids.add(event.id)
                yield event
            if len(page) < limit:
                return
            if fresh == 0:  # a whole page of one timestamp already seen: read wider
                limit *= 2
                continue
            limit = self._page_size
            lo = edge_ts

    async def replay_to_handlers(
        self,
        since: float | None = None,
        until: float | None = None,
        *,
        types: EventTypes = None,
        task_id: str | None = None,
    ) -> int:
        """Dispatch a stored time range to the subscribed handlers; returns the count."""
        n = 0
        async for event in self.replay(since, until, types=types, task_id=task_id):
            await self.dispatch(event)
            n += 1
        return n

    async def tail(
        self,
        since: float | None = None,
        *,
        types: EventTypes = None,
        task_id: str | None = None,
    ) -> AsyncIterator[TaskEvent]:
        """Yield events as they are stored, from ``since`` (default: now) on, forever.

        Stop by breaking out of the loop or cancelling. Each event is yielded once, in
        store order except for late arrivals (see the class docs).
        """
        self._bind_loop()
        type_list = _type_list(types)
        start = now() if since is None else since
        cursor = start
        seen: dict[str, float] = {}
        delay = self._poll_interval
        while True:
            found = False
            lo = max(start, cursor - self._lookback)
            limit = self._page_size
            while True:
                page = await self._storage.query(
                    task_id=task_id, types=type_list, since=lo, limit=limit
                )
                fresh = 0
                for event in page:
                    if event.id in seen:
                        continue
                    seen[event.id] = event.timestamp
                    cursor = max(cursor, event.timestamp)
                    fresh += 1
                    yield event
                found = found or fresh > 0
                if len(page) < limit:
                    break
                if fresh == 0 and page[-1].timestamp <= lo:
                    limit *= 2  # a page of ties already seen: read wider
                    continue
                lo = max(lo, page[-1].timestamp)
            horizon = cursor - self._lookback
            if len(seen) > 2 * self._page_size:
                seen = {k: ts for k, ts in seen.items() if ts >= horizon}
            delay = self._poll_interval if found else min(delay * 2, self._max_poll_interval)
            wake = self._wake
            if wake is None:
                self._wake = wake = anyio.Event()
            with anyio.move_on_after(delay):
                await wake.wait()

    # -- waking on new events from an in-process logger -------------------------------

    def _bind_loop(self) -> None:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
            self._loop_thread = threading.get_ident()
            if self._logger is not None:
                self._logger.add_listener(self._on_stored)

    def _on_stored(self, batch: Sequence[TaskEvent]) -> None:
        loop = self._loop
        if loop is None:
            return
        if threading.get_ident() == self._loop_thread:
            self._set_wake()
        else:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._set_wake)

    def _set_wake(self) -> None:
        wake, self._wake = self._wake, None
        if wake is not None:
            wake.set()

    # -- running: follow the log and dispatch to handlers ------------------------------

    async def run(
        self,
        since: float | None = None,
        *,
        task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        """Follow the log from ``since`` (default: now) and dispatch every new event to
        the subscribed handlers, until cancelled."""
        start = now() if since is None else since
        task_status.started()
        async for event in self.tail(start):
            await self.dispatch(event)

    async def start(self, since: float | None = None) -> None:
        """Connect an owned backend and start ``run`` in the background (``async with``
        does this); must be followed by ``aclose()`` in the same task."""
        if self._owns_backend and self._backend is not None:
            await self._backend.connect()
        if self._tg is not None:
            return
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        await self._tg.start(self.run, since)

    async def aclose(self) -> None:
        """Stop following the log and close an owned backend."""
        try:
            if self._tg is not None:
                tg, self._tg = self._tg, None
                tg.cancel_scope.cancel()
                await tg.__aexit__(None, None, None)
        finally:
            if self._logger is not None:
                self._logger.remove_listener(self._on_stored)
            self._loop = None
            if self._owns_backend and self._backend is not None:
                await self._backend.close()

    async def __aenter__(self) -> AsyncEventProcessor:
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
