"""The worker registry end to end: workers in this process and in real worker processes
appear in ``list_workers`` with what they run, leave at once on a clean shutdown and
drop out within one lease when SIGKILLed; ``omniq workers`` shows them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import e2e_tasks as t
import pytest
from typer.testing import CliRunner

from omniq.core import OmniQ
from omniq.core.cli import app
from omniq.models import WorkerInfo, WorkerType, now
from omniq.storage.testing.helpers import poll_until

pytestmark = pytest.mark.anyio
HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
WAIT = 30.0
LEASE = 1.0
"""The shortest lease the settings allow: a dead worker must vanish within it."""


def spawn_worker(url: str, lease: float) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), str(ROOT), env.get("PYTHONPATH", "")])
    return subprocess.Popen(
        [sys.executable, str(HERE / "worker_main.py"), url, str(lease)],
        env=env,
        stdout=subprocess.DEVNULL,
    )


def by_pid(workers: list[WorkerInfo]) -> dict[int, WorkerInfo]:
    return {w.pid: w for w in workers}


async def test_a_background_worker_is_listed_with_its_running_task(
    make_oq: Callable[..., OmniQ], tmp_path: Path
) -> None:
    async with make_oq(lease_seconds=LEASE) as oq:
        assert await oq.list_workers() == []
        marker = tmp_path / "started"
        async with oq.worker(queues=["default", "other"], concurrency=3) as handle:
            task = await oq.enqueue(t.mark_then_sleep, (str(marker), 2.0))
            workers = await poll_until(
                oq.list_workers, lambda ws: bool(ws) and task.id in ws[0].running, deadline=WAIT
            )
            (w,) = workers
            assert handle.pool is not None and w.id == handle.pool.worker_id
            assert (w.pid, w.hostname) == (os.getpid(), os.uname().nodename)
            assert w.queues == ("default", "other")
            assert w.concurrency == 3
            assert w.worker_type is WorkerType(oq.settings.default_worker)
            assert w.version and w.version != "unknown"
            assert w.started_at <= w.last_seen < w.expires_at <= w.last_seen + LEASE + 1e-6
            # The task finishing empties ``running`` at the next refresh.
            await poll_until(
                oq.list_workers, lambda ws: bool(ws) and not ws[0].running, deadline=WAIT
            )
        assert await oq.list_workers() == []  # a clean stop deregisters at once


async def test_the_registry_can_be_turned_off(make_oq: Callable[..., OmniQ]) -> None:
    async with make_oq() as oq, oq.worker(worker_registry=False):
        task = await oq.enqueue(t.add, (2, 3))
        r = await oq.get_result(task.id, wait=True, timeout=WAIT)
        assert r is not None and r.ok  # the worker runs (past its start), unlisted
        assert await oq.list_workers() == []


@pytest.mark.multiprocess
@pytest.mark.slow
async def test_a_sigkilled_worker_process_vanishes_within_one_lease(
    store_url: str, tmp_path: Path
) -> None:
    procs = [spawn_worker(store_url, LEASE) for _ in range(2)]
    try:
        async with OmniQ(store_url, lease_seconds=LEASE) as oq:
            # Two processes on one store see each other.
            pids = {p.pid for p in procs}
            await poll_until(oq.list_workers, lambda ws: pids <= set(by_pid(ws)), deadline=WAIT)
            marker = tmp_path / "started"
            # Long enough to be seen running; short enough for the survivor, which takes it
            # over once the victim's lease lapses, to drain it on SIGTERM.
            task = await oq.enqueue(t.mark_then_sleep, (str(marker), 4.0))
            workers = await poll_until(
                oq.list_workers, lambda ws: any(task.id in w.running for w in ws), deadline=WAIT
            )
            runner = next(w for w in workers if task.id in w.running)
            victim = next(p for p in procs if p.pid == runner.pid)
            survivor = next(p for p in procs if p is not victim)
            victim.send_signal(signal.SIGKILL)
            killed = now()
            victim.wait(WAIT)
            gone = await poll_until(
                oq.list_workers, lambda ws: runner.pid not in by_pid(ws), deadline=WAIT
            )
            vanished = now() - killed
            # Its last refresh came before the kill, so its entry lapsed within a lease;
            # the slack covers the listing calls on a loaded machine.
            print(f"killed worker vanished after {vanished:.2f}s")
            assert vanished <= LEASE + 0.75, f"took {vanished:.2f}s"
            assert survivor.pid in by_pid(gone)
            survivor.send_signal(signal.SIGTERM)
            assert survivor.wait(WAIT) == 0
            # A clean shutdown deregistered it at once (its lease had not lapsed).
            assert survivor.pid not in by_pid(await oq.list_workers())
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(WAIT)


def test_omniq_workers_shows_the_live_workers(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'omniq.db'}"
    proc = spawn_worker(url, 5.0)
    try:
        with OmniQ(url) as oq:
            deadline = now() + WAIT
            while proc.pid not in by_pid(oq.list_workers_sync()):
                assert now() < deadline, "the worker never registered"
                time.sleep(0.02)
        runner = CliRunner()
        shown = runner.invoke(app, ["workers", "-u", url])
        assert shown.exit_code == 0, shown.output
        assert str(proc.pid) in shown.output and "1 live worker" in shown.output
        as_json = runner.invoke(app, ["workers", "--json", "-u", url])
        assert as_json.exit_code == 0, as_json.output
        (entry,) = json.loads(as_json.output)
        assert entry["pid"] == proc.pid and entry["queues"] == ["default"]
        assert entry["running"] == [] and entry["concurrency"] == 2
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(WAIT)
