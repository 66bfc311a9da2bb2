"""Workers used on their own (no pool), the process pool's crash handling, the sync
WorkerPool wrapper and signal handling."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from omniq_workers_testkit import (
    AGATES,
    GATES,
    MemorySink,
    MemorySource,
    aadd,
    aadd_slow,
    add,
    boom,
    exit_hard,
    gate,
    make_task,
    omniq_children,
    segfault,
    value_of,
)

from omniq.models import TaskStatus, TaskTimeoutError, WorkerCrashedError
from omniq.workers import (
    AsyncWorker,
    AsyncWorkerPool,
    GeventWorker,
    ProcessWorker,
    RemoteTaskError,
    ThreadWorker,
    WorkerPool,
)

pytestmark = pytest.mark.anyio


@pytest.fixture(autouse=True)
def nothing_left_behind() -> Any:
    GATES.clear()
    AGATES.clear()
    yield
    assert [t.name for t in threading.enumerate() if t.name.startswith("omniq")] == []
    assert omniq_children() == []


async def test_async_worker_runs_coroutines_and_plain_functions() -> None:
    async with AsyncWorker(4) as w:
        assert await w.run(aadd, (1, 2)) == 3
        assert await w.run(add, (3, 4)) == 7  # a plain function runs in a helper thread
        with pytest.raises(TaskTimeoutError):
            await w.run(aadd_slow, (), timeout=0.05)


async def test_thread_worker_bounds_threads_and_runs_async_functions() -> None:
    async with ThreadWorker(2) as w:
        assert await w.run(add, (1, 1)) == 2
        assert await w.run(aadd, (2, 2)) == 4  # on the thread's own event loop
        with pytest.raises(ValueError, match="x"):
            await w.run(boom, ("x",))
        assert len([t for t in threading.enumerate() if t.name.startswith("omniq-thread")]) <= 2


async def test_gevent_worker_in_an_unpatched_process_uses_a_hub_thread() -> None:
    from omniq_workers_testkit import gsleep_for

    w = GeventWorker(4)
    async with w:
        assert not w.native
        assert await w.run(add, (1, 2)) == 3
        assert await w.run(aadd, (1, 2)) == 3
        t0 = time.monotonic()
        with pytest.raises(TaskTimeoutError):
            await w.run(gsleep_for, (30,), timeout=0.1)
        assert time.monotonic() - t0 < 5
        assert "omniq-gevent-hub" in [t.name for t in threading.enumerate()]
    assert w.greenlets == 0


async def test_process_worker_values_errors_and_timeout() -> None:
    from omniq_workers_testkit import sleep_for

    async with ProcessWorker(1) as w:
        first = set(w.pids)
        assert await w.run(add, (20, 22)) == 42
        assert await w.run(aadd, (1, 1)) == 2  # async functions run in the child too
        with pytest.raises(RemoteTaskError) as info:
            await w.run(boom, ("bad",))
        assert info.value.info.type == "omniq_workers_testkit.Boom"
        assert "raise Boom(msg)" in (info.value.info.traceback or "")
        with pytest.raises(TaskTimeoutError):
            await w.run(sleep_for, (30,), timeout=0.2)
        assert set(w.pids) != first  # the timed-out child was killed and replaced
        assert await w.run(add, (1, 1)) == 2


async def test_process_child_killed_with_sigkill_is_an_error_and_the_pool_goes_on(
    tmp_path: Path,
) -> None:
    pidfile = tmp_path / "pid"
    victim = make_task("omniq_workers_testkit:write_pid_and_hang", str(pidfile), worker="process")
    src, sink = MemorySource([victim]), MemorySink()
    pool = AsyncWorkerPool(src, sink, max_workers=4, process_workers=1, default_timeout=0)
    async with pool:
        deadline = time.monotonic() + 30
        while not pidfile.exists() or not pidfile.read_text():
            assert time.monotonic() < deadline, "the task never started"
            await _tick()
        pid = int(pidfile.read_text())
        os.kill(pid, signal.SIGKILL)
        await sink.wait_for(1)
        src.add([make_task("add", i, i, worker="process") for i in range(5)])
        await sink.wait_for(6)
    crashed = sink.by_id()[victim.id]
    assert crashed.status is TaskStatus.ERROR and crashed.crashed and not crashed.timed_out
    assert crashed.error is not None and crashed.error.type == "omniq.models.WorkerCrashedError"
    assert "SIGKILL" in crashed.error.message
    rest = [o for o in sink.outcomes if o.task_id != victim.id]
    assert sorted(value_of(o) for o in rest) == [0, 2, 4, 6, 8]
    assert pool.stats.crashed == 1


@pytest.mark.parametrize("fn", [exit_hard, segfault])
async def test_process_child_exit_and_segfault_raise_worker_crashed(fn: Any) -> None:
    async with ProcessWorker(1) as w:
        with pytest.raises(WorkerCrashedError):
            await w.run(fn)
        assert await w.run(add, (2, 3)) == 5


async def _tick() -> None:
    import asyncio

    await asyncio.sleep(0.01)  # polling a file another process writes, with a deadline


def test_sync_worker_pool_burst_and_context_manager() -> None:
    tasks = [make_task("add", i, 1) for i in range(20)] + [make_task("aadd", 1, 1)]
    src, sink = MemorySource(tasks), MemorySink()
    stats = WorkerPool(src, sink, max_workers=4, default_timeout=0).run(burst=True)
    assert stats.succeeded == 21 and len(sink.outcomes) == 21

    src2, sink2 = MemorySource([make_task("hold", "g", "a", worker="thread")]), MemorySink()
    with WorkerPool(src2, sink2, max_workers=2, default_timeout=0, shutdown_grace=30) as pool:
        deadline = time.monotonic() + 10
        while not sink2.started_claims:
            assert time.monotonic() < deadline
            time.sleep(0.01)  # waiting on another thread's progress, with a deadline
        gate("g").set()
    assert pool.stats.succeeded == 1


def test_signals_first_graceful_second_forced() -> None:
    tasks = [make_task("ahold", "never", f"k{i}", worker="async") for i in range(3)]
    src = MemorySource(tasks)

    class SignallingSink(MemorySink):
        async def started(self, claims: Any) -> None:
            await super().started(claims)
            os.kill(os.getpid(), signal.SIGTERM)  # graceful: would wait the 60 s grace
            # Identical pending signals coalesce, so the second one is a SIGINT.
            os.kill(os.getpid(), signal.SIGINT)  # second: stop now

    before = signal.getsignal(signal.SIGTERM)
    t0 = time.monotonic()
    stats = WorkerPool(src, SignallingSink(), shutdown_grace=60, default_timeout=0).run(
        handle_signals=True
    )
    assert time.monotonic() - t0 < 30
    assert stats.released == 3 and stats.succeeded == 0
    assert signal.getsignal(signal.SIGTERM) is before


@pytest.mark.slow
def test_gevent_in_a_monkey_patched_process() -> None:
    import json
    import subprocess
    import sys

    script = Path(__file__).with_name("gevent_patched_app.py")
    proc = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["native"] is True
    assert result["statuses"] == {"success": 21, "error": 2}
    assert result["timed_out"] == 1
    assert result["boom_type"] == "omniq_workers_testkit.Boom"
    # 20 tasks each sleeping 0.2 s with patched time.sleep ran concurrently.
    assert result["elapsed"] < 2.0
    assert result["threads_left"] == [] and result["greenlets_left"] == 0
