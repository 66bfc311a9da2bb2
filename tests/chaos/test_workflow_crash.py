"""Crash points of workflows: a process SIGKILLed right after the storage step that
ended a task (a worker's ``finish``, ``cancel``, the TTL sweep's ``expire``) loses
nothing that step triggers. Follow-ups and group callbacks are conditional dependents
the store releases inside that step, so another worker runs each exactly once.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import anyio
import chaos_tasks
import msgspec
import pytest

from omniq.core import OmniQ
from omniq.models import TaskStatus, now

HERE = Path(__file__).resolve().parent
WAIT = 30.0
BACKENDS = ["sqlite", "file-local", "redis", "postgres", "nats"]
"""Engines shared between processes (memory dies with its process:
``test_crash_in_process`` covers it)."""

RESULT_BACKENDS = BACKENDS
"""Engines whose ``cancel_with_results``/``expire_with_results`` write the results in
the same atomic step as the state change."""

pytestmark = [pytest.mark.anyio, pytest.mark.slow]


def _lines(ledger: Path, tag: str) -> int:
    if not ledger.exists():
        return 0
    return sum(1 for line in ledger.read_text().splitlines() if line.split()[0] == tag)


async def _crash(url: str, cfg: dict[str, Any]) -> None:
    """Run the crashing step in a child process SIGKILLed right after it."""
    proc = await anyio.run_process(
        [sys.executable, str(HERE / "crash_worker.py"), json.dumps({"url": url, **cfg})],
        check=False,
    )
    assert proc.returncode == -9, proc.stderr.decode()[-2000:]


async def _reopen(old: OmniQ, url: str) -> OmniQ:
    """Another process's view of the store: a fresh OmniQ (the fixture closes it)."""
    await old.close()
    q = OmniQ(url, url, lease_seconds=2.0, retry_delay=0.01)
    await q.open()
    _OPENED.append(q)
    return q


_OPENED: list[OmniQ] = []


@pytest.fixture
async def oq(chaos_url: str) -> Any:
    q = OmniQ(chaos_url, chaos_url, lease_seconds=2.0, retry_delay=0.01)
    async with q:
        yield q
    while _OPENED:
        await _OPENED.pop().close()


@pytest.mark.parametrize("backend_id", BACKENDS)
@pytest.mark.parametrize("fails", [False, True], ids=["success", "failure"])
async def test_follow_up_runs_once_after_a_crash_right_after_finish(
    oq: OmniQ, chaos_url: str, tmp_path: Path, fails: bool, backend_id: str
) -> None:
    ledger = tmp_path / "ledger"
    on_ok = oq.build(chaos_tasks.mark, (str(ledger), "on-success"))
    on_fail = oq.build(chaos_tasks.mark_failure, (str(ledger), "on-failure"))
    func = chaos_tasks.mark_then_fail if fails else chaos_tasks.mark
    parent = await oq.enqueue(
        func, (str(ledger), "parent"), max_retries=0, on_success=on_ok, on_failure=on_fail
    )
    await _crash(chaos_url, {"crash_after": "finish"})
    oq = await _reopen(oq, chaos_url)
    done = await oq.get_task(parent.id)
    assert done is not None
    assert done.status is (TaskStatus.ERROR if fails else TaskStatus.SUCCESS)
    ran, skipped = (on_fail, on_ok) if fails else (on_ok, on_fail)
    async with oq.worker(concurrency=2):
        r = await oq.get_result(ran.id, wait=True, timeout=WAIT)
        s = await oq.get_result(skipped.id, wait=True, timeout=WAIT)
    assert r is not None and r.status is TaskStatus.SUCCESS
    assert s is not None and s.status is TaskStatus.CANCELLED
    assert _lines(ledger, "parent") == 1
    assert _lines(ledger, "on-failure" if fails else "on-success") == 1
    assert _lines(ledger, "on-success" if fails else "on-failure") == 0


@pytest.mark.parametrize("backend_id", BACKENDS)
@pytest.mark.parametrize("how", ["cancel", "expire"])
async def test_on_failure_runs_once_after_a_crash_right_after_cancel_or_expiry(
    oq: OmniQ, chaos_url: str, tmp_path: Path, how: str, backend_id: str
) -> None:
    ledger = tmp_path / "ledger"
    on_fail = oq.build(chaos_tasks.mark_failure, (str(ledger), "on-failure"))
    built = oq.build(
        chaos_tasks.mark, (str(ledger), "victim"), queue="nobody", on_failure=on_fail, delay=3600
    )
    if how == "expire":  # its TTL passed before anyone claimed it
        built = msgspec.structs.replace(built, eta=None, expires_at=now() - 1.0)
    [victim] = await oq.enqueue_many([built])
    await _crash(chaos_url, {"crash_after": how, "task_id": victim.id})
    oq = await _reopen(oq, chaos_url)
    got = await oq.get_task(victim.id)
    assert got is not None
    assert got.status is (TaskStatus.CANCELLED if how == "cancel" else TaskStatus.EXPIRED)
    async with oq.worker(concurrency=2):
        r = await oq.get_result(on_fail.id, wait=True, timeout=WAIT)
    assert r is not None and r.status is TaskStatus.SUCCESS
    assert _lines(ledger, "on-failure") == 1
    assert _lines(ledger, "victim") == 0


@pytest.mark.parametrize("backend_id", RESULT_BACKENDS)
@pytest.mark.parametrize("how", ["cancel", "expire"])
async def test_cancel_or_expiry_result_survives_a_crash_right_after_the_step(
    oq: OmniQ, chaos_url: str, tmp_path: Path, how: str, backend_id: str
) -> None:
    """Killed right after the state change: the ended task and the dependent it cancelled
    have their results, and the ``on_failure`` follow-up received the ended task's."""
    ledger = tmp_path / "ledger"
    on_fail = oq.build(chaos_tasks.mark_failure, (str(ledger), "on-failure"))
    built = oq.build(
        chaos_tasks.mark, (str(ledger), "victim"), queue="nobody", on_failure=on_fail, delay=3600
    )
    if how == "expire":
        built = msgspec.structs.replace(built, eta=None, expires_at=now() - 1.0)
    [victim] = await oq.enqueue_many([built])
    child = await oq.enqueue(chaos_tasks.mark, (str(ledger), "child"), depends_on=victim)
    await _crash(chaos_url, {"crash_after": how, "task_id": victim.id})
    oq = await _reopen(oq, chaos_url)
    status = TaskStatus.CANCELLED if how == "cancel" else TaskStatus.EXPIRED
    got, got_child = await oq.get_result(victim.id), await oq.get_result(child.id)
    assert got is not None and got.status is status
    assert got.error is not None
    assert got.error.type.endswith("TaskCancelledError" if how == "cancel" else "TaskExpiredError")
    assert got_child is not None and got_child.status is TaskStatus.CANCELLED
    async with oq.worker(concurrency=2):
        r = await oq.get_result(on_fail.id, wait=True, timeout=WAIT)
    assert r is not None and r.status is TaskStatus.SUCCESS
    assert _lines(ledger, "on-failure") == 1
    [line] = [x for x in ledger.read_text().splitlines() if x.startswith("on-failure ")]
    assert line.split()[3] == status.value  # it received the ended task's result
    assert _lines(ledger, "victim") == 0 and _lines(ledger, "child") == 0


@pytest.mark.parametrize("backend_id", RESULT_BACKENDS)
async def test_cascade_results_survive_a_crash_right_after_a_failing_finish(
    oq: OmniQ, chaos_url: str, tmp_path: Path, backend_id: str
) -> None:
    """Killed right after the finish of a failed task: the dependents it cancelled have
    their ``cancelled`` results (written in the finish's own step), and a dependent's
    ``on_failure`` follow-up runs once, receiving that result."""
    ledger = tmp_path / "ledger"
    parent = await oq.enqueue(chaos_tasks.mark_then_fail, (str(ledger), "parent"), max_retries=0)
    on_fail = oq.build(chaos_tasks.mark_failure, (str(ledger), "on-failure"))
    child = await oq.enqueue(
        chaos_tasks.mark, (str(ledger), "child"), depends_on=parent, on_failure=on_fail
    )
    grandchild = await oq.enqueue(chaos_tasks.mark, (str(ledger), "grand"), depends_on=child)
    await _crash(chaos_url, {"crash_after": "finish"})
    oq = await _reopen(oq, chaos_url)
    done = await oq.get_task(parent.id)
    assert done is not None and done.status is TaskStatus.ERROR
    if backend_id == "nats":  # the dependents' guards cancel them (every worker's sweep)
        async with oq.worker(concurrency=2):
            await oq.get_result(on_fail.id, wait=True, timeout=WAIT)
    for dep in (child, grandchild):
        got = await oq.get_result(dep.id)
        assert got is not None and got.status is TaskStatus.CANCELLED
        assert got.error is not None and got.error.type.endswith("TaskCancelledError")
    async with oq.worker(concurrency=2):
        r = await oq.get_result(on_fail.id, wait=True, timeout=WAIT)
    assert r is not None and r.status is TaskStatus.SUCCESS
    [line] = [x for x in ledger.read_text().splitlines() if x.startswith("on-failure ")]
    assert line.split()[3] == TaskStatus.CANCELLED.value  # the dependent's result
    assert _lines(ledger, "parent") == 1
    assert _lines(ledger, "child") == 0 and _lines(ledger, "grand") == 0
