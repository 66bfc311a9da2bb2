"""A thread-safe, loop-agnostic wake-up primitive for in-process notification.

Waiters park an asyncio future on their own loop; ``notify`` resolves them through
``call_soon_threadsafe`` so producers may live on any thread or loop. A version
counter closes the check-then-wait race: a wait returns at once if anything was
notified since the version the caller read.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Hashable, Iterable

__all__ = ["Notifier"]

_ALL = object()


class Notifier:
    """Wake coroutines waiting on a key (or on anything, with the ``None`` key)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiters: dict[
            Hashable, list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]]
        ] = {}
        self.version = 0

    def notify(self, keys: Iterable[Hashable] | None = None) -> None:
        """Wake waiters on ``keys`` and every key-less waiter (all waiters if None)."""
        with self._lock:
            self.version += 1
            if keys is None:
                woken = [w for ws in self._waiters.values() for w in ws]
                self._waiters.clear()
            else:
                woken = self._waiters.pop(_ALL, [])
                for key in keys:
                    woken.extend(self._waiters.pop(key, ()))
        for loop, fut in woken:
            if not loop.is_closed():
                loop.call_soon_threadsafe(_resolve, fut)

    async def wait(
        self, seconds: float | None, *, key: Hashable | None = None, since: int | None = None
    ) -> bool:
        """Wait until notified (True) or ``seconds`` pass (False)."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        slot = _ALL if key is None else key
        with self._lock:
            if since is not None and since != self.version:
                return True
            self._waiters.setdefault(slot, []).append((loop, fut))
        try:
            if seconds is None:
                await fut
                return True
            if seconds <= 0:
                return False
            try:
                await asyncio.wait_for(asyncio.shield(fut), seconds)
            except TimeoutError:
                return False
            return True
        finally:
            with self._lock:
                waiters = self._waiters.get(slot)
                if waiters is not None:
                    with contextlib.suppress(ValueError):
                        waiters.remove((loop, fut))
                    if not waiters:
                        del self._waiters[slot]


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)
