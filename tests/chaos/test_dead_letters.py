"""Dead-letter API and ``omniq dlq`` on every backend: a task that fails for good is
listed with its error, inspected, requeued (fresh attempts, old result gone, runs
again) and purged (task and result), leaving other tasks alone."""

from __future__ import annotations

from pathlib import Path

import chaos_tasks as ct
import pytest
from typer.testing import CliRunner

from omniq.core import OmniQ
from omniq.core.cli import app
from omniq.models import TaskStatus

BACKEND_IDS = ["memory", "sqlite", "file-local", "postgres", "redis", "nats"]


@pytest.mark.anyio
@pytest.mark.slow
@pytest.mark.parametrize("backend_id", BACKEND_IDS)
async def test_dead_letters_list_show_requeue_purge(
    backend_id: str, chaos_url: str, tmp_path: Path
) -> None:
    flag = tmp_path / "fixed"
    async with OmniQ(chaos_url, lease_seconds=5.0, retry_delay=0.01) as oq:
        bad = await oq.enqueue(ct.blow_up, (str(flag),), max_retries=1)
        other = await oq.enqueue(ct.blow_up, (str(flag),), max_retries=0, queue="other")
        good = await oq.enqueue(ct.work, (str(tmp_path / "ledger"), "g", 0.0))
        async with oq.worker(queues=["default", "other"]):
            for t in (bad, other, good):
                assert await oq.get_result(t.id, wait=True, timeout=30) is not None
        dead = await oq.dead_letters()
        assert {d.task.id for d in dead} == {bad.id, other.id}
        assert [d.task.id for d in await oq.dead_letters("other")] == [other.id]
        d = await oq.dead_letter(bad.id)
        assert d is not None and d.task.attempt == 2 and "missing" in d.error
        assert await oq.dead_letter(good.id) is None
        flag.write_text("")
        assert await oq.requeue([bad.id, good.id]) == [bad.id]
        assert await oq.get_result(bad.id) is None  # the old error is gone
        async with oq.worker():
            r = await oq.get_result(bad.id, wait=True, timeout=30)
        assert r is not None and r.ok and r.value == "fixed" and r.attempts == 1
        assert [x.task.id for x in await oq.dead_letters()] == [other.id]
        assert await oq.purge_dead_letters() == 1
        assert await oq.get_task(other.id) is None and await oq.get_result(other.id) is None
        assert await oq.dead_letters() == []
        ok = await oq.get_task(good.id)
        assert ok is not None and ok.status is TaskStatus.SUCCESS


@pytest.mark.parametrize("backend_id", ["sqlite"])
def test_dlq_command_line(backend_id: str, chaos_url: str, tmp_path: Path) -> None:
    flag = tmp_path / "fixed"
    with OmniQ(chaos_url, retry_delay=0.01) as oq:
        a = oq.enqueue_sync(ct.blow_up, (str(flag),), max_retries=0)
        b = oq.enqueue_sync(ct.blow_up, (str(flag),), max_retries=0)
        with oq.worker():
            for t in (a, b):
                assert oq.get_result_sync(t.id, wait=True, timeout=30) is not None
    run = CliRunner().invoke
    out = run(app, ["dlq", "list", "--url", chaos_url])
    assert out.exit_code == 0 and a.id in out.stdout and b.id in out.stdout, out.output
    out = run(app, ["dlq", "show", a.id, "--url", chaos_url])
    assert out.exit_code == 0 and "RuntimeError" in out.stdout and "missing" in out.stdout
    assert run(app, ["dlq", "show", "nope", "--url", chaos_url]).exit_code == 1
    out = run(app, ["dlq", "requeue", a.id, "--url", chaos_url])
    assert out.exit_code == 0 and a.id in out.stdout, out.output
    out = run(app, ["dlq", "purge", "--yes", "--url", chaos_url])
    assert out.exit_code == 0 and "purged 1" in out.stdout, out.output
    with OmniQ(chaos_url) as oq:
        ta = oq.get_task_sync(a.id)
        assert ta is not None and ta.status is TaskStatus.PENDING and ta.attempt == 0
        assert oq.get_task_sync(b.id) is None
