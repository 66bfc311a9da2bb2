"""Dead letters (tasks ended in ``error``): requeue them, purge only them."""

from __future__ import annotations

import pytest

from omniq.models import TaskStatus, now
from omniq.storage import Backend, Completion
from omniq.storage.testing.helpers import task, tq


async def _fail(store: Backend, n: int, status: TaskStatus = TaskStatus.ERROR) -> list[str]:
    q = tq(store)
    ts = [task() for _ in range(n)]
    await q.enqueue(ts)
    claimed = await q.claim(["default"], "w", limit=n)
    assert len(claimed) == n
    await q.complete([Completion(c.task.id, c.token, status) for c in claimed])
    return [t.id for t in ts]


class TestDeadLetters:
    """Dead letters (tasks ended in ``error``): requeue them, purge only them."""

    pytestmark = pytest.mark.anyio

    async def test_requeue_resets_error_tasks_to_pending_attempt_zero(self, store: Backend) -> None:
        q = tq(store)
        dead = await _fail(store, 2)
        ok = await _fail(store, 1, TaskStatus.SUCCESS)
        assert await q.count(status=TaskStatus.ERROR) == 2
        # Unknown ids and tasks not in error are skipped; duplicates count once.
        got = await q.requeue([dead[1], "no-such-task", ok[0], dead[0], dead[1]])
        assert got == [dead[1], dead[0]]
        for t in await q.get(dead):
            assert t is not None and t.status is TaskStatus.PENDING and t.attempt == 0
        ok_task = await q.get_one(ok[0])
        assert ok_task is not None and ok_task.status is TaskStatus.SUCCESS
        assert await q.count(status=TaskStatus.ERROR) == 0
        claimed = await q.claim(["default"], "w2", limit=10)
        assert sorted(c.task.id for c in claimed) == sorted(dead)
        assert all(c.task.attempt == 1 for c in claimed)
        assert await q.requeue(dead) == []  # running now, not dead
        report = await q.complete([Completion(c.task.id, c.token) for c in claimed])
        assert sorted(report.done) == sorted(dead)

    async def test_requeued_task_wakes_a_waiting_worker(self, store: Backend) -> None:
        q = tq(store)
        [dead] = await _fail(store, 1)
        assert await q.requeue([dead]) == [dead]
        assert await q.wait_for_work(["default"], 5.0)
        assert [c.task.id for c in await q.claim(["default"], "w")] == [dead]

    async def test_purge_by_status_keeps_other_terminal_tasks(self, store: Backend) -> None:
        q = tq(store)
        dead = await _fail(store, 2)
        ok = await _fail(store, 1, TaskStatus.SUCCESS)
        assert await q.purge(finished_before=now() + 1, status=TaskStatus.ERROR) == 2
        assert await q.get(dead) == [None, None]
        kept = await q.get_one(ok[0])
        assert kept is not None and kept.status is TaskStatus.SUCCESS
        assert await q.purge(finished_before=now() + 1) == 1
