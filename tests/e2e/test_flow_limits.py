"""Flow limits end to end: the options on build/enqueue/@oq.task, a concurrency cap
held by an in-process worker pool, ``list_limits``/``omniq limits``, LIMITED events,
and a SIGKILLed worker process whose slot frees when its lease lapses."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import e2e_tasks as t
import flow_tasks
import pytest
from typer.testing import CliRunner

from omniq.core import OmniQ
from omniq.core.cli import app
from omniq.models import EventType, InvalidTaskError, TaskStatus, now
from omniq.queue import BreakerRegistry

pytestmark = pytest.mark.anyio
HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
WAIT = 30.0


def test_options_are_checked_and_reach_the_task() -> None:
    with OmniQ("memory://") as oq:
        task = oq.build(t.add, (1, 2), rate_limit="10/s", max_concurrency=2, limit_key="api")
        assert (task.rate_limit, task.max_concurrency, task.limit_key) == ("10/s", 2, "api")
        for bad in ({"rate_limit": "10/x"}, {"rate_limit": "0/s"}, {"max_concurrency": 0}):
            with pytest.raises(InvalidTaskError):
                oq.build(t.add, (1, 2), **bad)  # type: ignore[arg-type]
        with pytest.raises(InvalidTaskError, match="limit_key needs"):
            oq.build(t.add, (1, 2), limit_key="api")

        job = oq.task(max_concurrency=3)(flow_tasks.mark)
        built = job.build("x")
        assert built.max_concurrency == 3 and built.limit_key is None
        [many] = oq.enqueue_many_sync([(t.add, (1, 2))], rate_limit="5/m")
        assert many.rate_limit == "5/m"


def _overlap(path: Path) -> int:
    spans = [tuple(map(float, line.split())) for line in path.read_text().splitlines()]
    edges = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    most = cur = 0
    for _, d in edges:
        cur += d
        most = max(most, cur)
    return most


@pytest.mark.slow
async def test_max_concurrency_caps_a_pool(oq: OmniQ, tmp_path: Path) -> None:
    log = tmp_path / "spans"
    tasks = [
        await oq.enqueue(flow_tasks.span, (str(log), 0.3), max_concurrency=2) for _ in range(6)
    ]
    async with oq.worker(concurrency=6, worker_type="thread"):
        for task in tasks:
            r = await oq.get_result(task.id, wait=True, timeout=WAIT)
            assert r is not None and r.ok, r
    assert _overlap(log) == 2
    stored = [await oq.get_task(x.id) for x in tasks]
    assert all(s is not None and s.attempt == 1 for s in stored)  # holds cost no attempt
    [info] = await oq.list_limits()
    assert (info.key, info.running, info.max_concurrency) == (
        "flow_tasks:span",
        0,
        2,
    )
    evs = await oq.get_events("flow_tasks:span")
    assert evs and all(e.type is EventType.LIMITED for e in evs)
    assert len(evs) <= 3  # at most one per key per second


def test_cli_limits(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'q.db'}"
    with OmniQ(url) as oq:
        oq.enqueue_sync(t.add, (1, 2), rate_limit="4/m", limit_key="mail")
    res = CliRunner().invoke(app, ["limits", "--json", "--url", url])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output) == [
        {"key": "mail", "running": 0, "max_concurrency": None, "rate_limit": "4/m", "remaining": 4}
    ]
    res = CliRunner().invoke(app, ["limits", "--url", url])
    assert res.exit_code == 0 and "mail" in res.output and "4/m" in res.output


def _spawn(url: str) -> subprocess.Popen[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), str(ROOT), env.get("PYTHONPATH", "")])
    return subprocess.Popen(
        [sys.executable, str(HERE / "flow_worker.py"), url],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )


@pytest.mark.multiprocess
@pytest.mark.slow
async def test_sigkilled_worker_frees_its_slot(store_url: str, tmp_path: Path) -> None:
    """A worker process holding the only slot of a key is SIGKILLed: once its lease
    lapses the other worker process gets the slot (the held task runs again first, then
    the key's next task)."""
    marker = tmp_path / "held"
    ran = tmp_path / "ran"
    async with OmniQ(store_url) as oq:
        held = await oq.enqueue(flow_tasks.hold, (str(marker),), max_concurrency=1, limit_key="k")
        first = _spawn(store_url)
        second: subprocess.Popen[str] | None = None
        try:
            assert first.stdout is not None and first.stdout.readline().strip() == "worker ready"
            deadline = now() + WAIT
            while not marker.exists() or not marker.read_text():
                assert now() < deadline, "the holding task never started"
                await oq.get_result(held.id, wait=True, timeout=0.1)
            nxt = await oq.enqueue(flow_tasks.mark, (str(ran),), max_concurrency=1, limit_key="k")
            second = _spawn(store_url)
            assert second.stdout is not None and second.stdout.readline().strip() == "worker ready"
            r = await oq.get_result(nxt.id, wait=True, timeout=0.5)
            assert r is None  # the slot is taken while the first worker lives
            first.send_signal(signal.SIGKILL)
            first.wait(WAIT)
            r = await oq.get_result(nxt.id, wait=True, timeout=WAIT)
            assert r is not None and r.ok, r
            again = await oq.get_result(held.id, wait=True, timeout=WAIT)  # re-run at once
            assert again is not None and again.ok, again
        finally:
            for p in (first, second):
                if p is not None and p.poll() is None:
                    p.kill()
                    p.wait()


async def test_breaker_deferral_consumes_no_attempt(make_oq: Callable[..., OmniQ]) -> None:
    """A task claimed while its function's breaker is open goes back with the attempt
    given back: with max_retries=0 it is still pending, attempt 0, not failed."""
    breakers = BreakerRegistry(threshold=1, cooldown=3600)
    async with make_oq(circuit_breaker=breakers) as oq:
        first = await oq.enqueue(t.always_fails, max_retries=0)
        async with oq.worker(concurrency=1):
            r = await oq.get_result(first.id, wait=True, timeout=WAIT)
            assert r is not None and not r.ok
            assert breakers.allow("e2e_tasks:always_fails") is False
            second = await oq.enqueue(t.always_fails, max_retries=0)
            deadline = now() + WAIT
            while not any(
                e.metadata.get("reason") == "circuit_open" for e in await oq.get_events(second.id)
            ):
                assert now() < deadline, "the task was not deferred"
                await oq.get_result(second.id, wait=True, timeout=0.05)
        got = await oq.get_task(second.id)
        assert got is not None and got.status is TaskStatus.PENDING and got.attempt == 0
