"""Crash points on the memory backend, whose store lives and dies with its process.

The "kill" is ``_Killed`` (a BaseException no handler catches) raised right after the
storage step returned the state change, so nothing the caller would do after it
happens: no event, no result write of its own, no signal. The queue that made the call
is then dropped, and a fresh ``OmniQ`` over the same store objects plays the process
that comes next (as a restarted process would find a persistent store).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import chaos_tasks
import msgspec
import pytest

from omniq.config import Settings
from omniq.core import OmniQ
from omniq.models import TaskStatus, now
from omniq.queue import AsyncTaskQueue
from omniq.storage import MemoryBackend
from omniq.workers import Outcome

pytestmark = pytest.mark.anyio

WAIT = 20.0


class _Killed(BaseException):
    """The process died here."""


def _die_after(store: Any, *names: str) -> None:
    """Kill the caller once a call to one of ``names`` that ended a task returns."""
    for name in names:
        original = getattr(store, name)

        async def wrapped(*args: Any, _original: Any = original, **kwargs: Any) -> Any:
            report = await _original(*args, **kwargs)
            if report.done:
                raise _Killed
            return report

        setattr(store, name, wrapped)


def _revive(store: Any) -> None:
    """Drop the wrappers: the next process calls the store's own methods."""
    for name in (
        "finish",
        "complete",
        "cancel",
        "cancel_with_results",
        "expire",
        "expire_with_results",
    ):
        store.__dict__.pop(name, None)


def _lines(ledger: Path, tag: str) -> int:
    if not ledger.exists():
        return 0
    return sum(1 for line in ledger.read_text().splitlines() if line.split()[0] == tag)


@pytest.fixture
def mem() -> MemoryBackend:
    return MemoryBackend()


def _queue(mem: MemoryBackend) -> AsyncTaskQueue:
    """The process that will be killed: a queue over the store, no worker pool."""
    assert mem.tasks is not None
    return AsyncTaskQueue(mem.tasks, mem.results, settings=Settings(lease_seconds=2.0))


@pytest.mark.parametrize("fails", [False, True], ids=["success", "failure"])
async def test_follow_up_runs_once_after_a_crash_right_after_finish(
    mem: MemoryBackend, tmp_path: Path, fails: bool
) -> None:
    ledger = tmp_path / "ledger"
    q = _queue(mem)
    on_ok = q.build(chaos_tasks.mark, (str(ledger), "on-success"))
    on_fail = q.build(chaos_tasks.mark_failure, (str(ledger), "on-failure"))
    parent = await q.enqueue(
        chaos_tasks.mark, (str(ledger), "parent"), on_success=on_ok, on_failure=on_fail
    )
    source = q.worker_source(["default"])
    [claimed] = await source.claim(1)
    assert claimed.task.id == parent.id
    status = TaskStatus.ERROR if fails else TaskStatus.SUCCESS
    _die_after(mem.tasks, "finish")
    with pytest.raises(_Killed):
        await source.report(
            [
                Outcome(
                    claimed=claimed,
                    status=status,
                    finished_at=now(),
                    attempt=claimed.task.attempt,
                    retryable=False,
                )
            ],
            final=True,
        )
    _revive(mem.tasks)
    async with OmniQ(mem, mem, lease_seconds=2.0) as oq:
        done = await oq.get_task(parent.id)
        assert done is not None and done.status is status
        result = await oq.get_result(parent.id)
        assert result is not None and result.status is status  # stored with the completion
        ran, skipped = (on_fail, on_ok) if fails else (on_ok, on_fail)
        async with oq.worker(concurrency=2):
            r = await oq.get_result(ran.id, wait=True, timeout=WAIT)
            s = await oq.get_result(skipped.id, wait=True, timeout=WAIT)
    assert r is not None and r.status is TaskStatus.SUCCESS
    assert s is not None and s.status is TaskStatus.CANCELLED
    assert _lines(ledger, "on-failure" if fails else "on-success") == 1
    assert _lines(ledger, "on-success" if fails else "on-failure") == 0
    assert _lines(ledger, "parent") == 0  # ended once, never run again


@pytest.mark.parametrize("how", ["cancel", "expire"])
async def test_cancel_or_expiry_result_survives_a_crash_right_after_the_step(
    mem: MemoryBackend, tmp_path: Path, how: str
) -> None:
    ledger = tmp_path / "ledger"
    q = _queue(mem)
    on_fail = q.build(chaos_tasks.mark_failure, (str(ledger), "on-failure"))
    built = q.build(
        chaos_tasks.mark, (str(ledger), "victim"), queue="nobody", on_failure=on_fail, delay=3600
    )
    if how == "expire":  # its TTL passed before anyone claimed it
        built = msgspec.structs.replace(built, eta=None, expires_at=now() - 1.0)
    [victim] = await q.enqueue_many([built])
    child = await q.enqueue(chaos_tasks.mark, (str(ledger), "child"), depends_on=victim)
    _die_after(mem.tasks, how, f"{how}_with_results")
    with pytest.raises(_Killed):
        if how == "cancel":
            await q.cancel(victim.id)
        else:
            await q.ttl.expire()
    _revive(mem.tasks)
    status = TaskStatus.CANCELLED if how == "cancel" else TaskStatus.EXPIRED
    async with OmniQ(mem, mem, lease_seconds=2.0) as oq:
        got = await oq.get_task(victim.id)
        assert got is not None and got.status is status
        r_victim, r_child = await oq.get_result(victim.id), await oq.get_result(child.id)
        assert r_victim is not None and r_victim.status is status
        assert r_child is not None and r_child.status is TaskStatus.CANCELLED
        async with oq.worker(concurrency=2):
            r = await oq.get_result(on_fail.id, wait=True, timeout=WAIT)
    assert r is not None and r.status is TaskStatus.SUCCESS
    assert _lines(ledger, "on-failure") == 1
    [line] = [x for x in ledger.read_text().splitlines() if x.startswith("on-failure ")]
    assert line.split()[3] == status.value  # it received the ended task's result
    assert _lines(ledger, "victim") == 0 and _lines(ledger, "child") == 0


async def test_cascade_results_survive_a_crash_right_after_a_failing_finish(
    mem: MemoryBackend, tmp_path: Path
) -> None:
    """Killed right after the finish of a failed task: the dependents it cancelled have
    their results (written under the state lock with the completion), and the
    ``on_failure`` follow-up of one runs once, receiving its result."""
    ledger = tmp_path / "ledger"
    q = _queue(mem)
    parent = await q.enqueue(chaos_tasks.mark, (str(ledger), "parent"))
    on_fail = q.build(chaos_tasks.mark_failure, (str(ledger), "on-failure"))
    child = await q.enqueue(
        chaos_tasks.mark, (str(ledger), "child"), depends_on=parent, on_failure=on_fail
    )
    grandchild = await q.enqueue(chaos_tasks.mark, (str(ledger), "grand"), depends_on=child)
    source = q.worker_source(["default"])
    [claimed] = await source.claim(1)
    assert claimed.task.id == parent.id
    _die_after(mem.tasks, "finish", "complete")
    with pytest.raises(_Killed):
        await source.report(
            [
                Outcome(
                    claimed=claimed,
                    status=TaskStatus.ERROR,
                    finished_at=now(),
                    attempt=claimed.task.attempt,
                    retryable=False,
                )
            ],
            final=True,
        )
    _revive(mem.tasks)
    async with OmniQ(mem, mem, lease_seconds=2.0) as oq:
        for dep in (child, grandchild):
            got = await oq.get_result(dep.id)
            assert got is not None and got.status is TaskStatus.CANCELLED
            assert got.error is not None and got.error.type.endswith("TaskCancelledError")
        async with oq.worker(concurrency=2):
            r = await oq.get_result(on_fail.id, wait=True, timeout=WAIT)
    assert r is not None and r.status is TaskStatus.SUCCESS
    [line] = [x for x in ledger.read_text().splitlines() if x.startswith("on-failure ")]
    assert line.split()[3] == TaskStatus.CANCELLED.value  # the dependent's result
    assert _lines(ledger, "child") == 0 and _lines(ledger, "grand") == 0
