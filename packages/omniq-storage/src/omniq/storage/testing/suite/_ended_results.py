"""Results of the tasks ``cancel`` and ``expire`` end: ``cancel_with_results`` and
``expire_with_results`` store a ``cancelled``/``expired`` result for every task the call
ended (the cascade included), with the store's own result store (the atomic path) and
with a result store in another backend (the default path)."""

from __future__ import annotations

import anyio
import pytest

from omniq.models import TaskResult, TaskStatus, now
from omniq.storage import (
    CASCADE_REASON,
    Backend,
    Completion,
    MemoryBackend,
    ResultRecord,
    ResultStorage,
)
from omniq.storage.testing.helpers import rs, task, tq


def _check(
    got: TaskResult | None,
    status: TaskStatus,
    error_type: str,
    message: str,
    *,
    attempts: int = 0,
    queue: str = "default",
) -> TaskResult:
    assert got is not None
    assert got.status is status
    assert got.error is not None
    assert got.error.type.rsplit(".", 1)[-1] == error_type
    assert message in got.error.message
    assert got.attempts == attempts
    assert got.queue == queue
    assert got.finished_at is not None
    return got


class TestEndedResults:
    """``cancel_with_results``/``expire_with_results``: every task the call ended gets
    its result, written with the state change when the store holds the results."""

    pytestmark = pytest.mark.anyio

    @pytest.fixture(params=["own", "other"])
    async def results(self, request: pytest.FixtureRequest, store: Backend) -> ResultStorage:
        """The backend's own result store (atomic path), or another backend's."""
        if request.param == "own":
            return rs(store)
        other = MemoryBackend()
        assert other.results is not None
        return other.results

    async def test_cancel_stores_results_of_done_and_cascaded(
        self, store: Backend, results: ResultStorage
    ) -> None:
        q = tq(store)
        root = task(queue="q1")
        running = task(queue="q2")
        child = task(depends_on=(root.id,))
        grandchild = task(depends_on=(child.id,))
        on_fail = task(depends_on=(root.id,), run_if="failed")
        await q.enqueue([root, running, child, grandchild, on_fail])
        [c] = await q.claim(["q2"], "w")
        before = now()
        report = await q.cancel_with_results(
            [root.id, running.id], ResultRecord(results, retention=3600.0, reason="by hand")
        )
        assert sorted(report.done) == sorted([root.id, running.id])
        assert {t.id for t in report.cancelled} == {child.id, grandchild.id}
        assert report.released == [on_fail.id]
        got = dict(
            zip(
                [root.id, running.id, child.id, grandchild.id, on_fail.id],
                await results.get([root.id, running.id, child.id, grandchild.id, on_fail.id]),
                strict=True,
            )
        )
        r = _check(got[root.id], TaskStatus.CANCELLED, "TaskCancelledError", "by hand", queue="q1")
        assert r.expires_at is not None and r.finished_at is not None
        assert r.expires_at == pytest.approx(r.finished_at + 3600.0)
        assert r.finished_at >= before - 1.0
        _check(
            got[running.id],
            TaskStatus.CANCELLED,
            "TaskCancelledError",
            "by hand",
            attempts=1,
            queue="q2",
        )
        for dep in (child.id, grandchild.id):
            _check(got[dep], TaskStatus.CANCELLED, "TaskCancelledError", CASCADE_REASON)
        assert got[on_fail.id] is None  # released, not ended
        # The running task's worker is fenced out: its outcome changes nothing.
        late = await q.complete([Completion(running.id, c.token)])
        assert late.stale == [running.id]

    async def test_expire_stores_results_of_expired_and_cascaded(
        self, store: Backend, results: ResultStorage
    ) -> None:
        q = tq(store)
        doomed = task(expires_at=now() - 1.0, queue="late")
        child = task(depends_on=(doomed.id,))
        alive = task(expires_at=now() + 3600.0)
        await q.enqueue([doomed, child, alive])
        report = await q.expire_with_results(ResultRecord(results))
        assert report.done == [doomed.id]
        assert [t.id for t in report.cancelled] == [child.id]
        r_doomed, r_child, r_alive = await results.get([doomed.id, child.id, alive.id])
        r = _check(r_doomed, TaskStatus.EXPIRED, "TaskExpiredError", "expired", queue="late")
        assert r.expires_at is None  # no retention: kept
        _check(r_child, TaskStatus.CANCELLED, "TaskCancelledError", CASCADE_REASON)
        assert r_alive is None
        [t_doomed, t_child] = await q.get([doomed.id, child.id])
        assert t_doomed is not None and t_doomed.status is TaskStatus.EXPIRED
        assert t_child is not None and t_child.status is TaskStatus.CANCELLED

    async def test_nothing_ended_stores_nothing(
        self, store: Backend, results: ResultStorage
    ) -> None:
        q = tq(store)
        done = task()
        await q.enqueue([done])
        [c] = await q.claim(["default"], "w")
        await q.complete([Completion(done.id, c.token)])
        report = await q.cancel_with_results([done.id, "unknown-id"], ResultRecord(results))
        assert report.done == [] and report.cancelled == []
        assert await results.get([done.id, "unknown-id"]) == [None, None]
        report = await q.expire_with_results(ResultRecord(results))
        assert report.done == []

    async def test_plain_cancel_and_expire_store_no_result(self, store: Backend) -> None:
        q, r = tq(store), rs(store)
        a = task()
        b = task(expires_at=now() - 1.0)
        await q.enqueue([a, b])
        assert (await q.cancel([a.id])).done == [a.id]
        assert (await q.expire()).done == [b.id]
        assert await r.get([a.id, b.id]) == [None, None]

    async def test_result_waiter_gets_the_cancelled_result(self, store: Backend) -> None:
        q, r = tq(store), rs(store)
        a = task()
        await q.enqueue([a])
        got: list[TaskResult | None] = []

        async def wait() -> None:
            got.append(await r.wait(a.id, 10.0))

        async with anyio.create_task_group() as tg:
            tg.start_soon(wait)  # reads first, then waits: either order finds it
            await q.cancel_with_results([a.id], ResultRecord(r))
        assert got and got[0] is not None and got[0].status is TaskStatus.CANCELLED

    async def test_failing_finish_stores_results_of_cascaded(
        self, store: Backend, results: ResultStorage
    ) -> None:
        """``finish`` with a record: every dependent a failure cancels (transitively)
        gets its ``cancelled`` result; the failed task keeps the worker's result."""
        q = tq(store)
        root = task(queue="q1")
        child = task(depends_on=(root.id,))
        grandchild = task(depends_on=(child.id,), queue="q3")
        on_fail = task(depends_on=(root.id,), run_if="failed")
        await q.enqueue([root, child, grandchild, on_fail])
        [c] = await q.claim(["q1"], "w")
        mine = TaskResult(
            task_id=root.id,
            status=TaskStatus.ERROR,
            attempts=1,
            finished_at=now(),
            queue="q1",
        )
        report = await q.finish(
            [Completion(root.id, c.token, TaskStatus.ERROR)],
            [mine],
            results,
            lease=30.0,
            record=ResultRecord(results, retention=3600.0),
        )
        assert report.done == [root.id]
        assert {t.id for t in report.cancelled} == {child.id, grandchild.id}
        assert report.released == [on_fail.id]
        r_root, r_child, r_grand, r_on_fail = await results.get(
            [root.id, child.id, grandchild.id, on_fail.id]
        )
        assert r_root is not None and r_root.status is TaskStatus.ERROR
        _check(r_child, TaskStatus.CANCELLED, "TaskCancelledError", CASCADE_REASON)
        r = _check(r_grand, TaskStatus.CANCELLED, "TaskCancelledError", CASCADE_REASON, queue="q3")
        assert r.expires_at is not None and r.finished_at is not None
        assert r.expires_at == pytest.approx(r.finished_at + 3600.0)
        assert r_on_fail is None  # released, not ended

    async def test_finish_without_failure_or_record_stores_no_cascade(
        self, store: Backend, results: ResultStorage
    ) -> None:
        """A successful ``finish`` with a record cancels nothing and stores only the
        worker's result; a failing one without a record stores no cascade result."""
        q = tq(store)
        ok, failing = task(), task()
        after_ok = task(depends_on=(ok.id,))
        after_failing = task(depends_on=(failing.id,))
        await q.enqueue([ok, failing, after_ok, after_failing])
        claimed = {c.task.id: c for c in await q.claim(["default"], "w", limit=2)}
        done = TaskResult(task_id=ok.id, status=TaskStatus.SUCCESS, attempts=1)
        report = await q.finish(
            [Completion(ok.id, claimed[ok.id].token)],
            [done],
            results,
            lease=30.0,
            record=ResultRecord(results),
        )
        assert report.released == [after_ok.id] and report.cancelled == []
        assert await results.get([after_ok.id]) == [None]
        report = await q.finish(
            [Completion(failing.id, claimed[failing.id].token, TaskStatus.ERROR)],
            [],
            results,
            lease=30.0,
        )
        assert [t.id for t in report.cancelled] == [after_failing.id]
        assert await results.get([after_failing.id]) == [None]

    async def test_enqueue_stores_results_of_tasks_born_cancelled(
        self, store: Backend, results: ResultStorage
    ) -> None:
        """``enqueue_with_results``: a task stored already cancelled (its dependency had
        already failed) has its ``cancelled`` result when the call returns; the others
        of the batch (pending, waiting, released) get none."""
        q = tq(store)
        failed = task()
        await q.enqueue([failed])
        await q.cancel([failed.id])
        waiting_on = task()
        born = task(depends_on=(failed.id,), queue="q2")
        grandchild = task(depends_on=(born.id,))
        waiting = task(depends_on=(waiting_on.id,))
        on_fail = task(depends_on=(failed.id,), run_if="failed")
        before = now()
        stored = await q.enqueue_with_results(
            [waiting_on, born, grandchild, waiting, on_fail],
            ResultRecord(results, retention=3600.0),
        )
        assert [t.status for t in stored] == [
            TaskStatus.PENDING,
            TaskStatus.CANCELLED,
            TaskStatus.CANCELLED,
            TaskStatus.PENDING,
            TaskStatus.PENDING,
        ]
        got = await results.get([born.id, grandchild.id, waiting_on.id, waiting.id, on_fail.id])
        r = _check(got[0], TaskStatus.CANCELLED, "TaskCancelledError", CASCADE_REASON, queue="q2")
        assert r.expires_at is not None and r.finished_at is not None
        assert r.expires_at == pytest.approx(r.finished_at + 3600.0)
        assert r.finished_at >= before - 1.0
        _check(got[1], TaskStatus.CANCELLED, "TaskCancelledError", CASCADE_REASON)
        assert got[2:] == [None, None, None]

    async def test_enqueue_without_record_stores_no_result(self, store: Backend) -> None:
        q, r = tq(store), rs(store)
        failed = task()
        await q.enqueue([failed])
        await q.cancel([failed.id])
        born = task(depends_on=(failed.id,))
        [got] = await q.enqueue([born])
        assert got.status is TaskStatus.CANCELLED
        assert await r.get([born.id]) == [None]
