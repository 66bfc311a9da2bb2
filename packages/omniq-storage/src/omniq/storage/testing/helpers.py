"""Small helpers the conformance suite uses, for a backend's own tests too."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from omniq.models import Task
from omniq.storage import (
    Backend,
    EventStorage,
    ResultStorage,
    ScheduleStorage,
    TaskQueueStorage,
)

__all__ = ["NOOP", "es", "noop", "poll_until", "rs", "ss", "task", "tq"]

T = TypeVar("T")

NOOP = "omniq.storage.testing.helpers:noop"
"""The function path of the tasks the suite stores (storage never calls it)."""


def noop() -> None:
    """A task function that does nothing."""


def tq(store: Backend) -> TaskQueueStorage:
    assert store.tasks is not None
    return store.tasks


def rs(store: Backend) -> ResultStorage:
    assert store.results is not None
    return store.results


def es(store: Backend) -> EventStorage:
    assert store.events is not None
    return store.events


def ss(store: Backend) -> ScheduleStorage:
    assert store.schedules is not None
    return store.schedules


def task(**kw: object) -> Task:
    kw.setdefault("func", NOOP)
    return Task(**kw)  # type: ignore[arg-type]


async def poll_until(
    fn: Callable[[], Awaitable[T]], ok: Callable[[T], bool], *, deadline: float = 5.0
) -> T:
    """Call ``fn`` until ``ok(result)`` or the deadline passes (then fail)."""
    end = time.monotonic() + deadline
    while True:
        value = await fn()
        if ok(value):
            return value
        if time.monotonic() > end:
            raise AssertionError(f"condition not met within {deadline}s; last value {value!r}")
        import anyio

        await anyio.sleep(0.02)
