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


async def test_process_calls_time_out_each_at_its_own_deadline() -> None:
    """Process calls share the worker's loop timer too: a call that finishes in time is
    never reported late, each slow call times out at its own deadline, and its child is
    replaced."""
    from omniq_workers_testkit import sleep_for

    from omniq.workers import ProcessWorker

    async with ProcessWorker(3) as w:
        first = set(w.pids)
        t0 = time.monotonic()

        async def run(sleep: float, limit: float) -> tuple[str, float]:
            await w.gate.acquire()
            try:
                await w.execute(sleep_for, (sleep,), {}, limit)
            except TaskTimeoutError:
                return "timeout", time.monotonic() - t0
            finally:
                w.gate.release()
            return "ok", time.monotonic() - t0

        got = await asyncio.gather(run(30, 0.3), run(0.05, 20.0), run(30, 0.8))
        (k1, e1), (k2, _), (k3, e3) = got
        assert (k1, k2, k3) == ("timeout", "ok", "timeout")
        assert 0.3 <= e1 < e3 and 0.8 <= e3 < 10
        assert len(first - set(w.pids)) == 2  # both timed-out children were replaced


async def test_an_outside_cancel_of_a_process_call_is_not_a_timeout() -> None:
    from omniq.workers import ProcessWorker, TaskContext

    running = asyncio.Event()
    ctx = TaskContext("t1", 1, "default", "w", sink=lambda _ctx, _p: running.set())
    async with ProcessWorker(1) as w:
        await w.gate.acquire()
        try:
            task = asyncio.ensure_future(
                w.call("omniq_workers_testkit:started_then_sleep", None, 10.0, context=ctx)
            )
            async with asyncio.timeout(10):
                await running.wait()  # the child is running the call
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        finally:
            w.gate.release()
