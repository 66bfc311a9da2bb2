"""Task context, progress, prompt cancellation and in-task control, on every backend.

Cancel tests hold a task until the test creates its go file; once the cancel landed
the go file is created, and a task that was really stopped never writes ``finished``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import anyio
import control_tasks as ct
import pytest

import omniq.workers
from omniq.core import OmniQ, WorkerHandle
from omniq.models import EventType, NotInTaskError, Retry, TaskStatus, now

pytestmark = pytest.mark.anyio
HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
WAIT = 20.0


async def wait_for(cond: Callable[[], bool], what: str, within: float = WAIT) -> None:
    deadline = now() + within
    while not cond():
        assert now() < deadline, f"timed out waiting for {what}"
        await anyio.sleep(0.01)


async def stays_false(cond: Callable[[], bool], seconds: float) -> bool:
    """True if ``cond`` stayed false for ``seconds`` (the window a wrong outcome has)."""
    deadline = now() + seconds
    while now() < deadline:
        if cond():
            return False
        await anyio.sleep(0.01)
    return not cond()


def test_current_task_outside_a_task_raises() -> None:
    with pytest.raises(NotInTaskError):
        omniq.workers.current_task()
    assert omniq.workers.current_task_or_none() is None


async def test_retry_refuses_a_negative_delay() -> None:
    from omniq.models import InvalidTaskError

    with pytest.raises(InvalidTaskError):
        Retry(-1.0)


@pytest.mark.parametrize("wtype", ["async", "thread", "process", "gevent"])
async def test_current_task_in_every_worker_type(oq: OmniQ, wtype: str) -> None:
    fn = ct.async_context_info if wtype == "async" else ct.context_info
    async with oq.worker(concurrency=2, worker_id="w-ctx") as handle:
        task = await oq.enqueue(fn, worker=wtype, queue="default")
        r = await oq.get_result(task.id, wait=True, timeout=WAIT)
        assert handle.pool is not None
    assert r is not None and r.ok, r
    assert r.value == {
        "task_id": task.id,
        "attempt": 1,
        "queue": "default",
        "worker_id": "w-ctx",
        "cancelled": False,
    }


def _pool(handle: WorkerHandle) -> omniq.workers.AsyncWorkerPool:
    pool = handle.pool
    assert pool is not None
    return pool


@pytest.mark.parametrize("wtype", ["async", "process", "gevent", "thread"])
async def test_cancel_stops_a_running_task(oq: OmniQ, tmp_path: Path, wtype: str) -> None:
    marker = str(tmp_path / "marker")
    fn = {"async": ct.async_held, "thread": ct.thread_held}.get(wtype, ct.blocking_held)
    async with oq.worker(concurrency=2) as handle:
        task = await oq.enqueue(fn, (marker,), worker=wtype)
        await wait_for(lambda: "started" in ct.marks(marker), "the task to start")
        if wtype != "thread":  # progress from the run (a process task's child included)
            deadline = now() + WAIT
            while (p := await oq.get_progress(task.id)) is None:
                assert now() < deadline, "the run's progress was never stored"
                await anyio.sleep(0.02)
            assert (p.done, p.total, p.message) == (1, 10, "started")
        assert await oq.cancel(task.id)
        # The worker hears of it through the store's notification path, its status poll,
        # or a renewal or progress write the cancelled lease refused, and lets go of the
        # task as cancelled (not as a lost lease) whichever comes first.
        await wait_for(lambda: _pool(handle).in_flight == 0, "the cancel to land", 5.0)
        stats = _pool(handle).stats
        assert (stats.cancels, stats.leases_lost) == (1, 0)
        r = await oq.get_result(task.id, wait=True, timeout=WAIT)
        assert r is not None and r.status is TaskStatus.CANCELLED
        if wtype == "thread":
            # A thread cannot be interrupted: it sees the flag and returns early.
            await wait_for(lambda: "saw-cancel" in ct.marks(marker), "the thread to see it", 5.0)
        else:
            if wtype == "async":
                await wait_for(lambda: "cancelled" in ct.marks(marker), "CancelledError", 5.0)
            if wtype == "gevent":  # the kill lands in the hub's thread at the next switch
                gw = _pool(handle).worker("gevent")
                assert gw is not None
                await wait_for(lambda: gw.greenlets == 0, "the greenlet to be killed", 5.0)  # type: ignore[attr-defined]
            Path(marker + ".go").touch()  # noqa: ASYNC240
            assert await stays_false(lambda: "finished" in ct.marks(marker), 0.5), ct.marks(marker)
        # The worker is free again: the next task runs (a killed child was replaced).
        again = await oq.enqueue(ct.context_info, worker=wtype if wtype != "async" else None)
        r2 = await oq.get_result(again.id, wait=True, timeout=WAIT)
        assert r2 is not None and r2.ok, r2
    assert "finished" not in ct.marks(marker)
    r = await oq.get_result(task.id)
    assert r is not None and r.status is TaskStatus.CANCELLED  # the late outcome was refused
    types = [e.type for e in await oq.get_events(task.id)]
    assert types.count(EventType.CANCELLED) == 1 and EventType.COMPLETE not in types


async def test_a_cancel_a_lease_renewal_sees_first_stops_the_task_as_cancelled(
    tmp_path: Path,
) -> None:
    """No notification or status poll reaches the worker (another process's cancel on
    an embedded store, the worker's poll turned off): its next lease renewal is refused,
    and the run is still stopped as a cancel, not as a lost lease."""
    url = f"sqlite:///{tmp_path / 'q.db'}"
    marker = str(tmp_path / "marker")
    async with OmniQ(url, lease_seconds=1.5) as oq, OmniQ(url) as other:
        oq.queue.tasks.cancel_poll = None
        async with oq.worker(concurrency=2) as handle:
            task = await oq.enqueue(ct.async_held, (marker,))
            await wait_for(lambda: "started" in ct.marks(marker), "the task to start")
            assert await other.cancel(task.id)
            await wait_for(lambda: _pool(handle).in_flight == 0, "a renewal to see it", 5.0)
            stats = _pool(handle).stats
            assert (stats.cancels, stats.leases_lost) == (1, 0)
            await wait_for(lambda: "cancelled" in ct.marks(marker), "CancelledError", 5.0)
        r = await oq.get_result(task.id)
        assert r is not None and r.status is TaskStatus.CANCELLED


async def test_progress_is_coalesced_stored_and_logged(oq: OmniQ, tmp_path: Path) -> None:
    marker = str(tmp_path / "marker")
    n = 20000
    async with oq.worker(concurrency=2, progress_interval=0.2):
        task = await oq.enqueue(ct.progress_loop, (n, marker), worker="thread")
        await wait_for(lambda: "started" in ct.marks(marker), "the task to start")

        async def latest_is_final() -> bool:
            p = await oq.get_progress(task.id)
            return p is not None and p.done == n

        deadline = now() + WAIT
        while not await latest_is_final():
            assert now() < deadline, await oq.get_progress(task.id)
            await anyio.sleep(0.02)
        p = await oq.get_progress(task.id)
        assert p is not None and p.total == n and p.message == f"step {n}" and p.updated_at > 0
        Path(marker + ".go").touch()  # noqa: ASYNC240
        r = await oq.get_result(task.id, wait=True, timeout=WAIT)
        assert r is not None and r.ok
    events = [e for e in await oq.get_events(task.id) if e.type is EventType.PROGRESS]
    # 20000 calls, a handful of stored values (one event each).
    assert 1 <= len(events) <= 5, len(events)
    assert events[-1].metadata["done"] == n


async def test_retry_reruns_after_its_delay_counting_attempts(oq: OmniQ, tmp_path: Path) -> None:
    counter = str(tmp_path / "n")
    async with oq.worker(concurrency=2):
        task = await oq.enqueue(ct.retry_until, (counter, 2, 0.2), max_retries=3)
        r = await oq.get_result(task.id, wait=True, timeout=WAIT)
    assert r is not None and r.ok and r.value == 3 and r.attempts == 3
    events = await oq.get_events(task.id)
    retries = [e for e in events if e.type is EventType.RETRY]
    assert len(retries) == 2 and all(e.metadata.get("delay") == 0.2 for e in retries)


@pytest.mark.parametrize("wtype", ["thread", "process"])
async def test_retry_past_max_retries_fails(oq: OmniQ, tmp_path: Path, wtype: str) -> None:
    counter = str(tmp_path / "n")
    async with oq.worker(concurrency=2):
        task = await oq.enqueue(ct.retry_until, (counter, 10, None), max_retries=1, worker=wtype)
        r = await oq.get_result(task.id, wait=True, timeout=WAIT)
    assert r is not None and r.status is TaskStatus.ERROR and r.attempts == 2
    assert r.error is not None and r.error.type == "omniq.models.Retry"
    assert Path(counter).read_text() == "2"  # noqa: ASYNC240


@pytest.mark.parametrize("wtype", ["thread", "process"])
async def test_fail_ends_the_task_without_retries(oq: OmniQ, tmp_path: Path, wtype: str) -> None:
    marker = str(tmp_path / "ran")
    follow = str(tmp_path / "follow")
    async with oq.worker(concurrency=2):
        on_failure = oq.build(ct.mark_failure, (follow, "on-failure"))
        task = await oq.enqueue(
            ct.fail_for_good, (marker,), max_retries=5, worker=wtype, on_failure=[on_failure]
        )
        r = await oq.get_result(task.id, wait=True, timeout=WAIT)
        await wait_for(lambda: "on-failure:error" in ct.marks(follow), "the on_failure follow-up")
    assert r is not None and r.status is TaskStatus.ERROR and r.attempts == 1
    assert r.error is not None and r.error.type == "omniq.models.Fail"
    assert ct.marks(marker) == ["ran"]


# -- across processes ------------------------------------------------------------------------


def spawn_worker(url: str) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), str(ROOT), env.get("PYTHONPATH", "")])
    return subprocess.Popen([sys.executable, str(HERE / "worker_main.py"), url, "30"], env=env)


@pytest.mark.multiprocess
@pytest.mark.slow
async def test_cancel_and_progress_reach_a_worker_in_another_process(
    store_url: str, tmp_path: Path
) -> None:
    marker = str(tmp_path / "marker")
    async with OmniQ(store_url, lease_seconds=30.0) as oq:
        task = await oq.enqueue(ct.async_held, (marker,))
        proc = spawn_worker(store_url)
        try:
            await wait_for(lambda: "started" in ct.marks(marker), "the task to start")

            async def progress() -> object:
                return await oq.get_progress(task.id)

            deadline = now() + 5.0
            while (p := await progress()) is None:
                assert now() < deadline, "progress never became visible"
                await anyio.sleep(0.02)
            assert p is not None and p.done == 1 and p.message == "started"  # type: ignore[attr-defined]
            assert await oq.cancel(task.id)
            # The lease is 30 s: only the notification path (or a short poll) gets it there.
            await wait_for(lambda: "cancelled" in ct.marks(marker), "the cancel to land", 5.0)
            Path(marker + ".go").touch()  # noqa: ASYNC240
            assert await stays_false(lambda: "finished" in ct.marks(marker), 0.5)
            r = await oq.get_result(task.id)
            assert r is not None and r.status is TaskStatus.CANCELLED
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(WAIT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def test_cli_status_of_one_task_shows_its_progress(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from omniq.core.cli import app

    url = f"sqlite:///{tmp_path / 'q.db'}"
    marker = str(tmp_path / "marker")
    runner = CliRunner()
    with OmniQ(url) as oq, oq.worker(concurrency=1, progress_interval=0.1):
        task = oq.enqueue_sync(ct.progress_loop, (40, marker), worker="thread")
        deadline = now() + WAIT
        while (p := oq.get_progress_sync(task.id)) is None or p.done != 40:
            assert now() < deadline, p
            time.sleep(0.02)  # polling with a deadline
        out = runner.invoke(app, ["status", task.id, "-u", url])
        Path(marker + ".go").touch()
        oq.get_result_sync(task.id, wait=True, timeout=WAIT)
    assert out.exit_code == 0, out.output
    assert "running" in out.output and "40/40 (100%)" in out.output and "step 40" in out.output
    unknown = runner.invoke(app, ["status", "no-such-task", "-u", url])
    assert unknown.exit_code == 1 and "unknown task" in unknown.output


async def test_a_cancelled_run_leaves_the_running_gauge(oq: OmniQ, tmp_path: Path) -> None:
    """A run stopped by ``cancel`` (or whose lease was lost) reports no outcome of its
    own; the worker's metrics still count it out of ``omniq_tasks_running``."""
    from omniq.core import metrics_registry

    queue = f"g{os.urandom(4).hex()}"
    marker = str(tmp_path / "marker")

    def running() -> float:
        value = metrics_registry().get_sample_value("omniq_tasks_running", {"queue": queue})
        return value or 0.0

    async with oq.worker(queues=[queue], concurrency=2, metrics=True) as handle:
        task = await oq.enqueue(ct.async_held, (marker,), queue=queue)
        await wait_for(lambda: "started" in ct.marks(marker), "the task to start")
        await wait_for(lambda: running() == 1, "the gauge to count the run")
        assert await oq.cancel(task.id)
        await wait_for(lambda: _pool(handle).in_flight == 0, "the cancel to land", 5.0)
        await wait_for(lambda: running() == 0, "the gauge to let go of the run", 5.0)
