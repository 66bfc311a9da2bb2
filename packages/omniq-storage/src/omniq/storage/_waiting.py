"""Wait loops shared by backends: in-process notification plus an optional poll.

Backends without cross-process notification pass ``poll``: a cheap probe of the
engine (a file's size, SQLite's ``data_version``) checked with a short, growing
interval, so another process's change is noticed within ``max_poll`` seconds while
a change made in this process wakes waiters at once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable

from omniq.models import TaskResult, now

from ._interfaces import ResultStorage
from ._notify import Notifier

__all__ = ["wait_for_result", "wait_for_work"]


async def wait_for_work(
    notifier: Notifier,
    probe: Callable[[], Awaitable[tuple[bool, float | None, int]]],
    within: float,
    *,
    poll: Callable[[], Awaitable[Hashable]] | None = None,
    min_poll: float = 0.005,
    max_poll: float = 0.1,
) -> bool:
    """``probe`` returns (work ready now, earliest future eta, notifier version read
    with it). Return True when ``probe`` sees ready work, a notification arrives, the next eta
    comes, or ``poll``'s value changes; False after ``within`` seconds."""
    deadline = now() + within
    ready, eta, version = await probe()
    if ready:
        return True
    marker = await poll() if poll is not None else None
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
        if await notifier.wait(step, since=version):
            return True
        if eta is not None and eta <= now():
            return True
        if poll is not None and await poll() != marker:
            return True
        if poll is None and eta is None:
            return False


async def wait_for_result(
    store: ResultStorage,
    notifier: Notifier,
    task_id: str,
    within: float | None,
    *,
    poll_interval: float | None = None,
) -> TaskResult | None:
    """Return the result once stored; woken by ``notifier`` (and, for stores other
    processes write to, re-checked every ``poll_interval`` seconds)."""
    deadline = None if within is None else now() + within
    while True:
        version = notifier.version
        result = await store.get_one(task_id)
        if result is not None:
            return result
        left = None if deadline is None else deadline - now()
        if left is not None and left <= 0:
            return None
        step = (
            left
            if poll_interval is None
            else (poll_interval if left is None else min(left, poll_interval))
        )
        await notifier.wait(step, key=task_id, since=version)
