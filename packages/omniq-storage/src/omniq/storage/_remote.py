"""Helpers shared by the networked backends (PostgreSQL, Redis, NATS JetStream).

Envelope encoding (msgpack via msgspec), URL option parsing, and an in-process
registry of waiters that a backend's notification listener wakes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import msgspec

from omniq.models import ClaimedTask, Task, TaskStatus

from ._codec import (
    decode_event,
    decode_result,
    decode_schedule,
    decode_task,
    encode,
    encode_event,
)

__all__ = [
    "Waiters",
    "claimed",
    "decode_event",
    "decode_result",
    "decode_schedule",
    "decode_task",
    "encode",
    "encode_event",
    "split_options",
    "wait_event",
    "with_state",
    "with_state_eta",
]


def with_state(task: Task, status: str | TaskStatus, attempt: int) -> Task:
    """A copy of ``task`` carrying the store's current status and attempt."""
    st = status if isinstance(status, TaskStatus) else TaskStatus(status)
    if task.status is st and task.attempt == attempt:
        return task
    return msgspec.structs.replace(task, status=st, attempt=attempt)


def with_state_eta(task: Task, status: str | TaskStatus, attempt: int, eta: float | None) -> Task:
    """Like ``with_state``, also carrying the current eta (a retry moves it)."""
    st = status if isinstance(status, TaskStatus) else TaskStatus(status)
    if task.status is st and task.attempt == attempt and task.eta == eta:
        return task
    return msgspec.structs.replace(task, status=st, attempt=attempt, eta=eta)


def claimed(task: Task, token: str, until: float, worker_id: str) -> ClaimedTask:
    return ClaimedTask(task=task, token=token, lease_expires_at=until, worker_id=worker_id)


def split_options(url: str, names: Iterable[str]) -> tuple[str, dict[str, str]]:
    """Remove OmniQ's own query parameters (``names``) from ``url``; returns the cleaned
    URL for the driver and the removed options."""
    parts = urlsplit(url)
    wanted = set(names)
    mine: dict[str, str] = {}
    rest: list[tuple[str, str]] = []
    for k, v in parse_qsl(parts.query, keep_blank_values=True):
        if k in wanted:
            mine[k] = v
        else:
            rest.append((k, v))
    return urlunsplit(parts._replace(query=urlencode(rest))), mine


class Waiters:
    """In-process wake-ups keyed by name (a queue, a task id), set by a listener."""

    def __init__(self) -> None:
        self._by_key: dict[str, set[asyncio.Event]] = {}

    def register(self, keys: Sequence[str]) -> asyncio.Event:
        ev = asyncio.Event()
        for k in keys:
            self._by_key.setdefault(k, set()).add(ev)
        return ev

    def unregister(self, keys: Sequence[str], ev: asyncio.Event) -> None:
        for k in keys:
            s = self._by_key.get(k)
            if s is not None:
                s.discard(ev)
                if not s:
                    del self._by_key[k]

    def wake(self, key: str) -> None:
        for ev in self._by_key.get(key, ()):
            ev.set()

    def wake_all(self) -> None:
        for s in self._by_key.values():
            for ev in s:
                ev.set()


async def wait_event(ev: asyncio.Event, timeout: float | None) -> bool:  # noqa: ASYNC109
    """Wait for ``ev`` up to ``timeout`` seconds; True if it was set."""
    if timeout is not None and timeout <= 0:
        return ev.is_set()
    try:
        async with asyncio.timeout(timeout):
            await ev.wait()
    except TimeoutError:
        return ev.is_set()
    return True
