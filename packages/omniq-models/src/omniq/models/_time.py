"""Time helpers. OmniQ stores instants as float Unix seconds (UTC).

Every part of OmniQ that decides by the time (eta, retry backoff, TTL, leases,
schedules, result retention) reads it through ``now()``. ``now()`` reads the wall clock
unless a clock has been installed with ``set_clock``: tests install a ``ManualClock``
and move time forward with ``advance``/``set`` instead of sleeping. The installed clock
is process-wide (not per thread or task), because OmniQ reads the time from its helper
threads and worker threads as well as from the caller's.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Protocol, runtime_checkable

__all__ = [
    "ManualClock",
    "TimeSource",
    "get_clock",
    "now",
    "set_clock",
    "skip_ahead",
    "to_datetime",
    "use_clock",
]


@runtime_checkable
class TimeSource(Protocol):
    """Something that tells the time in Unix seconds (what ``set_clock`` installs)."""

    def now(self) -> float:
        """Current time as Unix seconds."""
        ...


class ManualClock:
    """A clock that stands still until told to move: ``advance(seconds)`` or
    ``set(when)``. It starts at ``start`` (default: the wall clock at creation).

    ``sleep`` advances the clock instead of waiting, so it can also be handed to a
    scheduler as its ``clock``. Thread-safe.
    """

    def __init__(self, start: float | datetime | None = None) -> None:
        self._lock = threading.Lock()
        self._t = time.time() if start is None else _seconds(start)

    def now(self) -> float:
        """The clock's current time (Unix seconds)."""
        return self._t

    def advance(self, seconds: float | timedelta) -> float:
        """Move the clock forward by ``seconds``; returns the new time."""
        step = seconds.total_seconds() if isinstance(seconds, timedelta) else float(seconds)
        if step < 0:
            raise ValueError(f"a clock only moves forward; got {step} seconds")
        with self._lock:
            self._t += step
            return self._t

    def set(self, when: float | datetime) -> None:
        """Put the clock at ``when`` (Unix seconds or a datetime; naive means UTC). It may
        move backwards, e.g. to replay an instant."""
        t = _seconds(when)
        with self._lock:
            self._t = t

    async def sleep(self, seconds: float) -> None:
        """Advance by ``seconds`` at once (and yield to the event loop)."""
        self.advance(max(0.0, seconds))
        await asyncio.sleep(0)

    def __repr__(self) -> str:
        return f"ManualClock({to_datetime(self._t).isoformat()})"


class _Offset:
    """Another clock (None: the wall clock) plus the seconds ``skip_ahead`` jumped over."""

    def __init__(self, base: TimeSource | None, offset: float) -> None:
        self.base = base
        self.offset = offset

    def now(self) -> float:
        base = self.base
        return (time.time() if base is None else base.now()) + self.offset


_clock: TimeSource | None = None
_clock_lock = threading.Lock()


def now() -> float:
    """Current time as Unix seconds: the installed clock's, else the wall clock's."""
    clock = _clock
    return time.time() if clock is None else clock.now()


def set_clock(clock: TimeSource | None) -> TimeSource | None:
    """Install ``clock`` as the process's time source (None: the wall clock again);
    returns the one it replaces, to put back later."""
    global _clock
    with _clock_lock:
        previous, _clock = _clock, clock
    return previous


def get_clock() -> TimeSource | None:
    """The installed clock, or None when ``now()`` reads the wall clock."""
    return _clock


@contextmanager
def use_clock(clock: TimeSource) -> Iterator[TimeSource]:
    """Install ``clock`` for the ``with`` block, then put the previous one back."""
    previous = set_clock(clock)
    try:
        yield clock
    finally:
        set_clock(previous)


def skip_ahead(seconds: float) -> None:
    """Move OmniQ's time forward by ``seconds`` without waiting: a ``ManualClock`` (or
    any installed clock with ``advance``) advances; the wall clock gains an offset.
    Inline mode uses it to pass a retry's backoff."""
    global _clock
    if seconds <= 0:
        return
    with _clock_lock:
        clock = _clock
        if isinstance(clock, ManualClock):
            clock.advance(seconds)
        elif isinstance(clock, _Offset):
            clock.offset += seconds
        else:
            _clock = _Offset(clock, seconds)


def _seconds(when: float | datetime) -> float:
    if isinstance(when, datetime):
        return (when if when.tzinfo is not None else when.replace(tzinfo=UTC)).timestamp()
    return float(when)


def to_datetime(ts: float) -> datetime:
    """Unix seconds to an aware UTC datetime."""
    return datetime.fromtimestamp(ts, tz=UTC)
