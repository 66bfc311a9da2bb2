"""Fixtures: event stores to run the event system against, and wait helpers."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

import anyio
import pytest

from omniq.models import EventType, TaskEvent
from omniq.storage._interfaces import EventStorage


class ListEventStorage(EventStorage):
    """Interim in-test store until the real backends land."""

    def __init__(self) -> None:
        self.events: dict[str, TaskEvent] = {}

    async def append(self, events: Sequence[TaskEvent]) -> None:
        for e in events:
            self.events[e.id] = e

    async def query(
        self,
        *,
        task_id: str | None = None,
        types: Sequence[EventType] | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int | None = None,
    ) -> list[TaskEvent]:
        out = sorted(self.events.values(), key=lambda e: (e.timestamp, e.id))
        out = [
            e
            for e in out
            if (task_id is None or e.task_id == task_id)
            and (types is None or e.type in types)
            and (since is None or e.timestamp >= since)
            and (until is None or e.timestamp < until)
        ]
        return out if limit is None else out[:limit]

    async def purge(self, *, older_than: float | None = None, keep_last: int | None = None) -> int:
        before = len(self.events)
        keep = sorted(self.events.values(), key=lambda e: (e.timestamp, e.id))
        if older_than is not None:
            keep = [e for e in keep if e.timestamp >= older_than]
        if keep_last is not None:
            keep = keep[len(keep) - keep_last :] if keep_last else []
        self.events = {e.id: e for e in keep}
        return before - len(self.events)

    async def count(self) -> int:
        return len(self.events)


@pytest.fixture
async def store() -> AsyncIterator[EventStorage]:
    yield ListEventStorage()


async def wait_until(
    predicate: Callable[[], Awaitable[bool]], timeout: float = 10.0, what: str = "condition"
) -> None:
    """Poll ``predicate`` until true, failing after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not await predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await anyio.sleep(0.005)
