"""Crash recovery and cross-process behaviour: real worker processes, SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import anyio
import e2e_tasks as t
import pytest

from omniq.core import OmniQ
from omniq.models import TaskResult, TaskStatus, now

pytestmark = [pytest.mark.anyio, pytest.mark.multiprocess, pytest.mark.slow]
HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
WAIT = 30.0


def spawn_worker(url: str, lease: float, *extra: str) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), str(ROOT), env.get("PYTHONPATH", "")])
    return subprocess.Popen(
        [sys.executable, str(HERE / "worker_main.py"), url, str(lease), *extra], env=env
    )


async def wait_for(cond: Callable[[], bool], what: str) -> None:
    deadline = now() + WAIT
    while not cond():
        assert now() < deadline, f"timed out waiting for {what}"
        await anyio.sleep(0.02)


def has_run(marker: Path) -> Callable[[], bool]:
    """True once ``die_first_time`` has recorded its run in ``marker``.

    The file exists as soon as the task opens it, before its "x" is written; killing the
    worker in that window would leave no record of the first run, so wait for the content.
    """
    return lambda: marker.exists() and "x" in marker.read_text()


async def kill_first_run(store_url: str, marker: Path, max_retries: int) -> TaskResult | None:
    """Enqueue ``die_first_time``, SIGKILL the worker process running it, then let an
    in-process worker (1 s lease) take over; the task's result once it has one."""
    async with OmniQ(store_url, lease_seconds=1.0) as oq:
        task = await oq.enqueue(t.die_first_time, (str(marker),), max_retries=max_retries)
        proc = spawn_worker(store_url, 1.0)
        try:
            await wait_for(has_run(marker), "the first run to record itself")
            proc.send_signal(signal.SIGKILL)
            proc.wait(WAIT)
        finally:
            if proc.poll() is None:
                proc.kill()
        async with oq.worker():
            return await oq.get_result(task.id, wait=True, timeout=WAIT)


async def test_sigkill_mid_task_runs_again_after_lease_and_completes_once(
    store_url: str, tmp_path: Path
) -> None:
    marker = tmp_path / "runs"
    r = await kill_first_run(store_url, marker, max_retries=3)
    assert r is not None and r.ok, r
    assert r.value.startswith("completed on run 2")
    assert r.attempts == 2
    assert marker.read_text() == "xx"  # ran twice: killed once, completed once


async def test_poison_task_ends_as_worker_crashed(store_url: str, tmp_path: Path) -> None:
    marker = tmp_path / "runs"
    r = await kill_first_run(store_url, marker, max_retries=0)
    assert r is not None and r.status is TaskStatus.ERROR
    assert r.error is not None and r.error.type.endswith("WorkerCrashedError")
    assert marker.read_text() == "x"  # never ran a second time


async def test_dependencies_across_worker_processes(store_url: str, tmp_path: Path) -> None:
    log = str(tmp_path / "order")
    async with OmniQ(store_url) as oq:
        a = oq.build(t.record, (log, "a"))
        b = oq.build(t.record, (log, "b"), depends_on=a)
        c = oq.build(t.record, (log, "c"), depends_on=b)
        await oq.enqueue_many([a, b, c])
        procs = [spawn_worker(store_url, 5.0) for _ in range(2)]
        try:
            r = await oq.get_result(c.id, wait=True, timeout=WAIT)
        finally:
            for p in procs:
                p.send_signal(signal.SIGTERM)
            for p in procs:
                p.wait(WAIT)
        assert r is not None and r.ok
        assert t.read_file(log).split() == ["a", "b", "c"]


async def test_sigterm_is_a_graceful_shutdown(store_url: str, tmp_path: Path) -> None:
    async with OmniQ(store_url) as oq:
        marker = tmp_path / "started"
        task = await oq.enqueue(t.mark_then_sleep, (str(marker), 0.5))
        proc = spawn_worker(store_url, 5.0)
        try:
            await wait_for(marker.exists, "the task to start")
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(WAIT) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
        r = await oq.get_result(task.id)
        assert r is not None and r.ok
        assert r.attempts == 1
