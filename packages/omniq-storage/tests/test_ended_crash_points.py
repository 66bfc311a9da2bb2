"""Cancel and TTL expiry store their results in the step that ends the tasks
(PostgreSQL transaction, Redis script, NATS revision-checked record write): a process
SIGKILLed right after that step leaves every task it ended, and every dependent it
cancelled, terminal *with* its result; nothing has to repair anything."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import anyio
import msgspec
import pytest

from omniq.models import Task, TaskResult, TaskStatus, now
from omniq.storage import Backend, ResultRecord, open_storage
from omniq.storage._backends.nats._tasks import QueueCore
from omniq.storage.testing.helpers import NOOP, poll_until
from omniq.storage.testing.servers import drop_namespace, unique_url

pytestmark = pytest.mark.anyio
HERE = Path(__file__).resolve().parent
RETENTION = 600.0


@pytest.fixture(params=["postgresql", "redis", "nats"])
def url(request: pytest.FixtureRequest) -> Iterator[str]:
    u = unique_url(request.param)
    yield u
    drop_namespace(u)


def _fast_guards(be: Backend) -> None:
    """NATS: enqueue guards due at once, so a fresh client's sweep re-checks at once."""
    if isinstance(be.tasks, QueueCore):
        be.tasks.guard_delay = be.tasks.blocked_recheck = 0.2


async def _crash(
    url: str, how: str, task_id: str, queue: str = "nobody", child_id: str = ""
) -> None:
    cfg = {
        "url": url,
        "child_id": child_id,
        "how": how,
        "task_id": task_id,
        "queue": queue,
        "retention": RETENTION,
        "reason": how,
    }
    proc = await anyio.run_process(
        [sys.executable, str(HERE / "ended_crash_child.py"), json.dumps(cfg)], check=False
    )
    assert proc.returncode == -9, proc.stderr.decode()[-2000:] + proc.stdout.decode()


def _check(res: TaskResult | None, task: Task, status: TaskStatus, message: str) -> None:
    assert res is not None, f"{task.id} has no result"
    assert res.status is status
    assert res.error is not None
    want = "TaskExpiredError" if status is TaskStatus.EXPIRED else "TaskCancelledError"
    assert res.error.type.endswith(want)
    assert message in res.error.message
    assert res.queue == task.queue
    assert res.finished_at is not None and res.expires_at is not None
    assert res.expires_at == pytest.approx(res.finished_at + RETENTION)


@pytest.mark.parametrize("how", ["cancel", "expire"])
async def test_a_crash_right_after_cancel_or_expiry_leaves_the_results(url: str, how: str) -> None:
    if how == "cancel":
        parent = Task(func=NOOP, queue="nobody", eta=now() + 3600)
        status = TaskStatus.CANCELLED
    else:
        parent = Task(func=NOOP, queue="nobody", expires_at=now() - 1.0)
        status = TaskStatus.EXPIRED
    child = Task(func=NOOP, queue="nobody", depends_on=(parent.id,))
    grandchild = Task(func=NOOP, queue="nobody", depends_on=(child.id,))
    async with open_storage(url) as be:
        assert be.tasks is not None
        _fast_guards(be)
        await be.tasks.enqueue([parent, child, grandchild])
    await _crash(url, how, parent.id)
    async with open_storage(url) as be:
        q, rs = be.tasks, be.results
        assert q is not None and rs is not None
        got = await q.get_one(parent.id)
        assert got is not None and got.status is status
        _check(await rs.get_one(parent.id), parent, status, how)
        if not url.startswith("nats"):  # the cascade was part of the same step
            for dep in (child, grandchild):
                t = await q.get_one(dep.id)
                assert t is not None and t.status is TaskStatus.CANCELLED
                _check(await rs.get_one(dep.id), dep, TaskStatus.CANCELLED, "dependency")
        # NATS: the dependents' guards re-check them (the sweep every worker runs); each
        # holds its result from the write that cancels it.
        for dep in (child, grandchild):

            async def ended(tid: str = dep.id) -> Task | None:
                await q.reclaim_expired()
                return await q.get_one(tid)

            t = await poll_until(ended, lambda t: t is not None and t.status.is_terminal)
            assert t is not None and t.status is TaskStatus.CANCELLED
            _check(await rs.get_one(dep.id), dep, TaskStatus.CANCELLED, "dependency")


async def test_a_crash_right_after_a_failing_finish_leaves_the_cascade_results(
    url: str,
) -> None:
    """A worker's failure (``finish`` with a record) cancels the dependents and stores
    their results in its own step: a SIGKILL right after it leaves each of them
    cancelled with its result (NATS: the guards' re-check cancels them, each write
    holding its result)."""
    parent = Task(func=NOOP, queue="crash-finish")
    child = Task(func=NOOP, queue="nobody", depends_on=(parent.id,))
    grandchild = Task(func=NOOP, queue="nobody", depends_on=(child.id,))
    async with open_storage(url) as be:
        assert be.tasks is not None
        _fast_guards(be)
        await be.tasks.enqueue([parent, child, grandchild])
    await _crash(url, "finish", parent.id, queue=parent.queue)
    async with open_storage(url) as be:
        q, rs = be.tasks, be.results
        assert q is not None and rs is not None
        got = await q.get_one(parent.id)
        assert got is not None and got.status is TaskStatus.ERROR
        mine = await rs.get_one(parent.id)
        assert mine is not None and mine.status is TaskStatus.ERROR
        for dep in (child, grandchild):

            async def ended(tid: str = dep.id) -> Task | None:
                if url.startswith("nats"):  # the guards' re-check, as every worker runs
                    await q.reclaim_expired()
                return await q.get_one(tid)

            t = await poll_until(ended, lambda t: t is not None and t.status.is_terminal)
            assert t is not None and t.status is TaskStatus.CANCELLED
            _check(await rs.get_one(dep.id), dep, TaskStatus.CANCELLED, "dependency")


@pytest.fixture(params=["postgresql", "redis", "nats", "sqlite", "file"])
def any_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/crash.db"
    elif request.param == "file":
        yield f"file://{tmp_path}/store"
    else:
        u = unique_url(request.param)
        yield u
        drop_namespace(u)


async def test_a_crash_right_after_enqueue_leaves_the_result_of_a_task_born_cancelled(
    any_url: str,
) -> None:
    """A task enqueued after its dependency failed is stored cancelled with its result
    in the enqueue's own step (``enqueue_with_results``): a SIGKILL right after it
    leaves the task cancelled *with* its result (NATS: read from the task's record
    until the result store holds its copy)."""
    url = any_url
    parent = Task(func=NOOP, queue="nobody")
    child = Task(func=NOOP, queue="nobody", depends_on=(parent.id,))
    async with open_storage(url) as be:
        assert be.tasks is not None
        await be.tasks.enqueue([parent])
        await be.tasks.cancel([parent.id])
    await _crash(url, "enqueue", parent.id, child_id=child.id)
    async with open_storage(url) as be:
        q, rs = be.tasks, be.results
        assert q is not None and rs is not None
        got = await q.get_one(child.id)
        assert got is not None and got.status is TaskStatus.CANCELLED
        _check(await rs.get_one(child.id), child, TaskStatus.CANCELLED, "dependency")


@pytest.fixture
def nats_url() -> Iterator[str]:
    u = unique_url("nats")
    yield u
    drop_namespace(u)


async def test_a_nats_result_deleted_after_the_crash_stays_deleted(nats_url: str) -> None:
    """NATS: the result store reads a result from the task record only while it never
    held one of its own, so ``delete`` (a tombstone) is final."""
    url = nats_url
    a = Task(func=NOOP, queue="nobody")
    async with open_storage(url) as be:
        assert be.tasks is not None
        await be.tasks.enqueue([a])
    await _crash(url, "cancel", a.id)
    async with open_storage(url) as be:
        rs = be.results
        assert rs is not None
        assert await rs.get_one(a.id) is not None  # from the record
        assert await rs.delete([a.id]) == 1
        assert await rs.get_one(a.id) is None


async def test_the_stored_results_are_exactly_what_the_record_builds(url: str) -> None:
    """Each engine builds the results its own way (Python, Lua, the NATS record); each
    stores exactly what ``ResultRecord.result`` gives for the task at that time (a task
    born cancelled by ``enqueue_with_results`` included)."""
    a = Task(func=NOOP, queue="q1", expires_at=now() + 3600.0)
    b = Task(func=NOOP, queue="q2", depends_on=(a.id,))
    e = Task(func=NOOP, queue="q3", expires_at=now() - 1.5)
    async with open_storage(url) as be:
        q, rs = be.tasks, be.results
        assert q is not None and rs is not None
        await q.enqueue([a, b, e])
        [running] = await q.claim(["q1"], "w")
        rec = ResultRecord(rs, retention=1234.5, reason="no longer wanted")
        await q.cancel_with_results([a.id], rec)
        await q.expire_with_results(rec)
        born = Task(func=NOOP, queue="q4", depends_on=(a.id,))
        await q.enqueue_with_results([born], rec)
        for task, status, cascaded in (
            (running.task, TaskStatus.CANCELLED, False),
            (b, TaskStatus.CANCELLED, True),
            (e, TaskStatus.EXPIRED, False),
            (born, TaskStatus.CANCELLED, True),
        ):
            got = await rs.get_one(task.id)
            assert got is not None and got.finished_at is not None
            want = rec.result(task, status, got.finished_at, cascaded=cascaded)
            assert got.expires_at == pytest.approx(want.expires_at)
            assert msgspec.structs.replace(got, expires_at=want.expires_at) == want
