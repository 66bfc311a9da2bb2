"""Queue pause/resume end to end: the facade with its events and ``_sync`` twins, the
``omniq queue`` commands, and a pause holding across two worker processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import e2e_tasks as t
import pause_tasks
import pytest
from typer.testing import CliRunner

from omniq.core import OmniQ
from omniq.core.cli import app
from omniq.models import EventType, InvalidTaskError, TaskStatus, now

pytestmark = pytest.mark.anyio
HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
WAIT = 30.0


async def test_pause_resume_list_and_events(oq: OmniQ, tmp_path: Path) -> None:
    log = str(tmp_path / "log")
    assert await oq.pause_queue("reports") is True
    assert await oq.pause_queue("reports") is False
    task = await oq.enqueue(t.record, (log, "r"), queue="reports")
    [info] = [q for q in await oq.list_queues() if q.name == "reports"]
    assert info.paused and info.count(TaskStatus.PENDING) == 1
    async with oq.worker(queues=["reports"]):
        assert await oq.get_result(task.id, wait=True, timeout=0.5) is None
        got = await oq.get_task(task.id)
        assert got is not None and got.status is TaskStatus.PENDING
        assert await oq.resume_queue("reports") is True
        r = await oq.get_result(task.id, wait=True, timeout=WAIT)
    assert r is not None and r.ok
    assert await oq.resume_queue("reports") is False
    [info] = [q for q in await oq.list_queues() if q.name == "reports"]
    assert not info.paused and info.count("success") == 1
    evs = await oq.get_events("reports")  # a queue event's task_id is the queue name
    assert [(e.type, e.task_id, e.queue) for e in evs] == [
        (EventType.QUEUE_PAUSED, "reports", "reports"),
        (EventType.QUEUE_RESUMED, "reports", "reports"),
    ]
    with pytest.raises(InvalidTaskError):
        await oq.pause_queue("no spaces")


def test_sync_twins(make_oq: Callable[..., OmniQ]) -> None:
    with make_oq() as oq:
        assert oq.pause_queue_sync("q1") is True
        assert [(q.name, q.paused, q.total) for q in oq.list_queues_sync()] == [("q1", True, 0)]
        assert oq.resume_queue_sync("q1") is True
        assert oq.list_queues_sync() == []


def test_cli_queue_list_pause_resume(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'q.db'}"
    runner = CliRunner()
    with OmniQ(url) as oq:
        oq.enqueue_sync(t.add, (1, 2), queue="mail")

    def run(*args: str) -> str:
        res = runner.invoke(app, [*args, "--url", url])
        assert res.exit_code == 0, res.output
        return res.output

    assert run("queue", "pause", "mail").strip() == "paused mail"
    assert run("queue", "pause", "mail").strip() == "mail was already paused"
    rows = json.loads(run("queue", "list", "--json"))
    assert rows == [
        {
            "name": "mail",
            "paused": True,
            "counts": {s.value: int(s is TaskStatus.PENDING) for s in TaskStatus},
        }
    ]
    table = run("queue", "list")
    assert "mail" in table and "paused" in table
    assert run("queue", "resume", "mail").strip() == "resumed mail"
    assert run("queue", "resume", "mail").strip() == "mail was not paused"
    assert json.loads(run("queue", "list", "--json"))[0]["paused"] is False
    res = runner.invoke(app, ["queue", "pause", "bad name", "--url", url])
    assert res.exit_code == 2


def _spawn(url: str) -> subprocess.Popen[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), str(ROOT), env.get("PYTHONPATH", "")])
    return subprocess.Popen(
        [sys.executable, str(HERE / "pause_worker.py"), url],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )


def _pids(path: Path) -> set[int]:
    return {int(x) for x in path.read_text().split()} if path.exists() else set()


@pytest.mark.multiprocess
@pytest.mark.slow
async def test_pause_holds_across_two_worker_processes(store_url: str, tmp_path: Path) -> None:
    """Tasks enqueued into a paused queue stay pending while two worker processes keep
    claiming (both are seen running tasks of another queue meanwhile), then all run
    after resume."""
    ran = tmp_path / "ran"
    probes = tmp_path / "probes"
    async with OmniQ(store_url) as oq:
        await oq.pause_queue("default")
        held = await oq.enqueue_many([oq.build(pause_tasks.whoami, (str(ran),)) for _ in range(20)])
        procs = [_spawn(store_url) for _ in range(2)]
        try:
            for p in procs:
                assert p.stdout is not None and p.stdout.readline().strip() == "worker ready"
            worker_pids = {p.pid for p in procs}
            # Both workers claim (from both their queues) while "default" is paused.
            deadline = now() + WAIT
            while _pids(probes) != worker_pids:
                assert now() < deadline, f"probes ran only in {_pids(probes)}"
                probe = await oq.enqueue(pause_tasks.whoami, (str(probes),), queue="probe")
                r = await oq.get_result(probe.id, wait=True, timeout=WAIT)
                assert r is not None and r.ok
            assert not ran.exists(), "a task of the paused queue ran"
            tasks = [await oq.get_task(h.id) for h in held]
            assert all(x is not None and x.status is TaskStatus.PENDING for x in tasks)

            await oq.resume_queue("default")
            for h in held:
                r = await oq.get_result(h.id, wait=True, timeout=WAIT)
                assert r is not None and r.ok, r
            assert len(ran.read_text().split()) == len(held)
            assert _pids(ran) <= worker_pids
        finally:
            for p in procs:
                p.send_signal(signal.SIGTERM)
            for p in procs:
                try:
                    p.wait(WAIT)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
