"""The one wait/notify primitive of every backend: result waits and work wake-ups.

A ``Wake`` is a registry of waiters keyed by name (a task id, a queue, a worker id).
Whoever learns of a change calls ``notify(keys)``: a backend writing in this process,
or an engine's own notification (LISTEN/NOTIFY, pub/sub, a KV watch) arriving on the
backend's listener. Waiters park a future on their own event loop, so producers may
live on any thread or loop.

Two ways to wait, both free of the check-then-wait race:

- ``watch(keys)`` registers first; the caller then checks the engine and awaits the
  watch, which returns at once if a notification arrived since it was registered;
- ``wait(seconds, since=version)`` for key-less waits whose check reads ``version``
  under the same lock as the state it probes (the in-process stores).

``wait_for_result`` and ``wait_for_work`` are the wait loops built on it.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Hashable, Iterable, Sequence
from types import TracebackType

from omniq.models import TaskResult, now

__all__ = ["Wake", "Watch", "wait_for_result", "wait_for_work"]

_ALL: Hashable = object()


class _Slot:
    """One watch's registration: the future a notification resolves (``None``; a
    wait's own timer resolves it with ``False`` and puts a fresh one in its place).
    ``live``: still listed under its keys (a notification takes it off)."""

    __slots__ = ("fut", "live", "loop")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.fut: asyncio.Future[bool | None] = loop.create_future()
        self.live = True


class Wake:
    """Wake coroutines waiting on a key (or on anything, with key-less waits)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiters: dict[Hashable, list[_Slot]] = {}
        self.version = 0
        """Bumped by every ``notify``: a key-less wait passes the value it read."""

    def notify(self, keys: Iterable[Hashable] | None = None) -> None:
        """Wake waiters on ``keys`` and every key-less waiter (all waiters if None)."""
        with self._lock:
            self.version += 1
            if keys is None:
                slots = [w for ws in self._waiters.values() for w in ws]
                self._waiters.clear()
            else:
                slots = self._waiters.pop(_ALL, [])
                for key in keys:
                    slots.extend(self._waiters.pop(key, ()))
            woken = []
            for slot in slots:
                slot.live = False
                woken.append((slot.loop, slot.fut))
        if not woken:
            return
        try:
            here: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            here = None
        for loop, fut in woken:
            if loop is here:
                _resolve(fut)  # same loop: no self-pipe write, as asyncio.Event.set
            elif not loop.is_closed():
                loop.call_soon_threadsafe(_resolve, fut)

    def watch(self, keys: Sequence[Hashable], *, since: int | None = None) -> Watch:
        """Register for ``keys`` now (use as a context manager). With ``since``, the
        watch is already fired if anything was notified after that version."""
        return Watch(self, keys, since)

    async def wait(
        self, seconds: float | None, *, key: Hashable | None = None, since: int | None = None
    ) -> bool:
        """Wait until notified (True) or ``seconds`` pass (False)."""
        with self.watch([_ALL if key is None else key], since=since) as w:
            return await w.wait(seconds)

    def _add(self, keys: Sequence[Hashable], slot: _Slot, since: int | None) -> None:
        with self._lock:
            if since is not None and since != self.version:
                slot.live = False
                _resolve(slot.fut)
                return
            for key in keys:
                self._waiters.setdefault(key, []).append(slot)

    def _remove(self, keys: Sequence[Hashable], slot: _Slot) -> None:
        with self._lock:
            slot.live = False
            for key in keys:
                waiters = self._waiters.get(key)
                if waiters is None:
                    continue
                try:
                    waiters.remove(slot)
                except ValueError:
                    continue
                if not waiters:
                    del self._waiters[key]

    def _rearm(self, slot: _Slot, fut: asyncio.Future[bool | None]) -> bool:
        """Give a still-listed ``slot`` a fresh future in place of ``fut`` (its wait
        ended without a notification); False, changing nothing, when a notification
        took the slot or resolved ``fut`` first."""
        with self._lock:
            if slot.fut is not fut or not slot.live or (fut.done() and not fut.cancelled()):
                return False
            slot.fut = slot.loop.create_future()
            return True


class Watch:
    """A registration on some keys of a ``Wake``, made before the check it guards, so a
    notification between the check and the wait is never missed."""

    def __init__(self, wake: Wake, keys: Sequence[Hashable], since: int | None) -> None:
        self._wake = wake
        self._keys = keys
        self._slot = _Slot(asyncio.get_running_loop())
        wake._add(keys, self._slot, since)

    def __enter__(self) -> Watch:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._wake._remove(self._keys, self._slot)

    @property
    def fired(self) -> bool:
        """True once a notification for one of the keys arrived."""
        return self._slot.fut.done()

    async def wait(self, seconds: float | None) -> bool:
        """Wait until notified (True) or ``seconds`` pass (False). The caller's task
        awaits the very future a notification resolves (no helper futures or tasks in
        between), so it resumes on the loop's next turn."""
        slot = self._slot
        fut = slot.fut
        if fut.done():
            return True
        if seconds is not None and seconds <= 0:
            return False
        timer = None if seconds is None else slot.loop.call_later(seconds, self._expire, fut)
        try:
            return (await fut) is not False
        except asyncio.CancelledError:
            self._wake._rearm(slot, fut)  # the caller's cancellation, not a notification
            raise
        finally:
            if timer is not None:
                timer.cancel()

    def _expire(self, fut: asyncio.Future[bool | None]) -> None:
        # A future cancelled with its waiter (not resumed yet) is re-armed by the wait.
        if not fut.done() and self._wake._rearm(self._slot, fut):
            fut.set_result(False)


def _resolve(fut: asyncio.Future[bool | None]) -> None:
    if not fut.done():
        fut.set_result(None)


async def wait_for_result(
    get: Callable[[], Awaitable[TaskResult | None]],
    wake: Wake,
    key: Hashable,
    within: float | None,
    *,
    recheck: float | None = None,
) -> TaskResult | None:
    """Return the result once ``get`` finds it, woken by ``notify(key)``; None after
    ``within`` seconds. ``recheck`` also re-reads that often, for stores whose writers
    cannot always notify (other processes on a file or SQLite database, a notification
    lost during a reconnect)."""
    deadline = None if within is None else now() + within
    while True:
        with wake.watch([key]) as watch:
            result = await get()
            if result is not None:
                return result
            left = None if deadline is None else deadline - now()
            if left is not None and left <= 0:
                return None
            if recheck is not None:
                left = recheck if left is None else min(left, recheck)
            await watch.wait(left)


async def wait_for_work(
    wake: Wake,
    probe: Callable[[], Awaitable[tuple[bool, float | None, int]]],
    within: float,
    *,
    poll: Callable[[], Awaitable[Hashable]] | None = None,
    min_poll: float = 0.005,
    max_poll: float = 0.1,
) -> bool:
    """``probe`` returns (work ready now, earliest future eta, ``wake.version`` read
    with it). Return True when ``probe`` sees ready work, a notification arrives, the
    next eta comes, or ``poll``'s value changes (a cheap probe of other processes'
    writes, checked with a growing interval up to ``max_poll``); False after
    ``within`` seconds."""
    deadline = now() + within
    # The marker is read before the probe: a write committed between the two then
    # changes it, where read after the probe it would hide that write until the timeout.
    marker = await poll() if poll is not None else None
    ready, eta, version = await probe()
    if ready:
        return True
    interval = min_poll
    while True:
        t = now()
        left = deadline - t
        if left <= 0:
            return False
        step = left
        if eta is not None:
            if eta <= t:
                return True
            step = min(step, eta - t)
        if poll is not None:
            step = min(step, interval)
            interval = min(interval * 2, max_poll)
        if await wake.wait(step, since=version):
            return True
        if eta is not None and eta <= now():
            return True
        if poll is not None and await poll() != marker:
            return True
        if poll is None and eta is None:
            return False
