"""Cancel notifications inside one process, and the watcher loop every backend shares.

``TaskQueueStorage.signal_cancel`` and a backend's listener (pub/sub, NOTIFY, a
subject) push cancelled ids into the store's ``CancelFeed``; every running
``watch_cancels`` gets each id and reports those its worker holds. Stores without a
cross-process notification also poll the held tasks' status (``cancel_poll``).
"""

from __future__ import annotations

import asyncio
import builtins
import threading
from collections.abc import Callable, Collection, Iterable, Sequence
from typing import Protocol

from omniq.models import Task, TaskStatus

from ._wake import Wake

__all__ = ["CancelFeed", "watch_cancels"]


class _Inbox:
    __slots__ = ("ids",)

    def __init__(self) -> None:
        self.ids: set[str] = set()


class CancelFeed:
    """Fans cancelled task ids out to every watcher of one store object (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._inboxes: builtins.list[_Inbox] = []
        self.wake = Wake()

    def push(self, task_ids: Iterable[str]) -> None:
        """Deliver ``task_ids`` to every watcher and wake them."""
        ids = set(task_ids)
        if not ids:
            return
        with self._lock:
            for inbox in self._inboxes:
                inbox.ids |= ids
        self.wake.notify()

    def _open(self) -> _Inbox:
        inbox = _Inbox()
        with self._lock:
            self._inboxes.append(inbox)
        return inbox

    def _close(self, inbox: _Inbox) -> None:
        with self._lock:
            self._inboxes.remove(inbox)

    def _take(self, inbox: _Inbox) -> set[str]:
        with self._lock:
            ids, inbox.ids = inbox.ids, set()
        return ids


class _Watched(Protocol):
    """What the watcher needs of a task store."""

    @property
    def cancel_feed(self) -> CancelFeed: ...

    @property
    def cancel_poll(self) -> float | None: ...

    async def get(self, task_ids: Sequence[str]) -> builtins.list[Task | None]: ...


async def watch_cancels(
    store: _Watched,
    running: Callable[[], Collection[str]],
    on_cancel: Callable[[builtins.list[str]], None],
) -> None:
    """The body of ``TaskQueueStorage.watch_cancels``: notified ids at once, and a status
    poll of the held tasks every ``store.cancel_poll`` seconds (idle: a notification
    only)."""
    feed = store.cancel_feed
    inbox = feed._open()
    reported: set[str] = set()
    loop = asyncio.get_running_loop()
    poll = store.cancel_poll
    next_poll = loop.time() + (poll or 0.0)
    try:
        while True:
            version = feed.wake.version
            ids = feed._take(inbox)
            held = running()
            if reported:
                reported &= set(held)  # forget ids no longer held
            hits = [i for i in ids if i in held and i not in reported]
            if poll is not None and held and loop.time() >= next_poll:
                next_poll = loop.time() + poll
                look = [i for i in held if i not in reported and i not in hits]
                if look:
                    got = await store.get(look)
                    hits += [
                        t.id for t in got if t is not None and t.status is TaskStatus.CANCELLED
                    ]
            if hits:
                reported.update(hits)
                on_cancel(hits)
            step: float | None = None
            if poll is not None:
                step = max(0.0, next_poll - loop.time()) if running() else poll
            await feed.wake.wait(step, since=version)
    finally:
        feed._close(inbox)
