"""AsyncWorker timeouts share one loop timer: each coroutine still times out at its own
deadline, finished ones never do, and a cancellation from elsewhere stays a
cancellation."""

from __future__ import annotations

import asyncio
import time

import pytest

from omniq.models import TaskTimeoutError
from omniq.workers import AsyncWorker

pytestmark = pytest.mark.anyio


async def _sleep(seconds: float) -> float:
    await asyncio.sleep(seconds)
    return seconds


async def test_mixed_timeouts_fire_each_at_its_own_deadline() -> None:
    async with AsyncWorker(64) as w:
        t0 = time.monotonic()

        async def run(sleep: float, limit: float) -> tuple[str, float]:
            try:
                await w.execute(_sleep, (sleep,), {}, limit)
            except TaskTimeoutError:
                return "timeout", time.monotonic() - t0
            return "ok", time.monotonic() - t0

        cases = [(0.01, 5.0)] * 20 + [(5.0, 0.2), (5.0, 0.4), (0.05, 0.3), (5.0, 0.1)]
        got = await asyncio.gather(*(run(s, t) for s, t in cases))
    assert [g[0] for g in got[:20]] == ["ok"] * 20
    (k1, e1), (k2, e2), (k3, _), (k4, e4) = got[20:]
    assert (k1, k2, k3, k4) == ("timeout", "timeout", "ok", "timeout")
    assert 0.1 <= e4 < e1 < e2 < 2.0
    assert e1 >= 0.2 and e2 >= 0.4


async def test_an_outside_cancel_is_not_a_timeout() -> None:
    async with AsyncWorker(4) as w:
        started = asyncio.Event()

        async def slow() -> None:
            started.set()
            await asyncio.sleep(30)

        task = asyncio.ensure_future(w.execute(slow, (), {}, 10.0))
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_after_a_timeout_the_same_task_runs_on() -> None:
    async with AsyncWorker(4) as w:
        with pytest.raises(TaskTimeoutError):
            await w.execute(_sleep, (5.0,), {}, 0.05)
        # The same task goes on: its cancel count was reset, later awaits are unaffected.
        assert await w.execute(_sleep, (0.1,), {}, 5.0) == 0.1
        await asyncio.sleep(0.01)
