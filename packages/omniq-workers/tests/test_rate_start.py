"""A rate-limited task starts only within its rate's guard of the claim that leased it
(``since`` on the claimed list); a later one is released unstarted."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

import pytest
from omniq_workers_testkit import MemorySink, MemorySource, make_task

from omniq.models import ClaimedTask, Task, TaskStatus
from omniq.workers import AsyncWorkerPool

pytestmark = pytest.mark.anyio


class _Claims(list[ClaimedTask]):
    since: float | None = None


class _AgedSource(MemorySource):
    """Claims as if the store had been asked ``age`` seconds ago."""

    def __init__(self, tasks: list[Task], age: float) -> None:
        super().__init__(tasks)
        self.age = age
        self.gave_back = asyncio.Event()

    async def release(self, claims: Sequence[ClaimedTask]) -> None:
        await super().release(claims)
        self.gave_back.set()

    async def claim(self, limit: int) -> list[ClaimedTask]:
        out = _Claims(await super().claim(limit))
        out.since = time.monotonic() - self.age
        return out


def _limited(**limits: object) -> Task:
    import msgspec

    return msgspec.structs.replace(make_task("anoop"), **limits)


async def _run(src: _AgedSource, sink: MemorySink, reported: int) -> AsyncWorkerPool:
    """Run until ``reported`` outcomes came, or (0) the claim was given back."""
    pool = AsyncWorkerPool(src, sink, max_workers=4, renew_interval=10.0, default_timeout=0)
    async with pool:
        if reported:
            await sink.wait_for(reported, timeout=10)
        else:
            async with asyncio.timeout(10):
                await src.gave_back.wait()
    return pool


async def test_a_late_rate_limited_task_is_released_unstarted() -> None:
    late = _limited(rate_limit="50/s")  # guard: 20 ms
    src, sink = _AgedSource([late], age=1.0), MemorySink()
    pool = await _run(src, sink, 0)
    assert [c.task.id for c in src.released] == [late.id]
    assert sink.outcomes == [] and sink.started_claims == []
    assert pool.stats.late_starts == 1 and pool.stats.released == 1


async def test_on_time_and_unlimited_tasks_start() -> None:
    on_time = _limited(rate_limit="50/s")
    src, sink = _AgedSource([on_time], age=0.0), MemorySink()
    pool = await _run(src, sink, 1)
    assert [o.status for o in sink.outcomes] == [TaskStatus.SUCCESS]
    assert pool.stats.late_starts == 0
    # Limits other than a rate do not care how old the claim is.
    capped, plain = _limited(max_concurrency=1), make_task("anoop")
    src, sink = _AgedSource([capped, plain], age=1.0), MemorySink()
    pool = await _run(src, sink, 2)
    assert sorted(o.status for o in sink.outcomes) == [TaskStatus.SUCCESS] * 2
    assert src.released == [] and pool.stats.late_starts == 0
