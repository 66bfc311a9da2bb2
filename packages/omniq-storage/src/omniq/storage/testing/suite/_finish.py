"""The worker's end of a task: ``finish`` (results + complete, fenced by the lease), and
dependencies listed more than once."""

from __future__ import annotations

import anyio
import pytest

from omniq.models import Payload, TaskResult, TaskStatus, now
from omniq.storage import Backend, Completion
from omniq.storage.testing.helpers import rs, task, tq


def result_of(
    tid: str, status: TaskStatus = TaskStatus.SUCCESS, ttl: float | None = None
) -> TaskResult:
    return TaskResult(
        task_id=tid,
        status=status,
        payload=Payload("msgpack", b"\x2a"),
        attempts=1,
        finished_at=now(),
        expires_at=None if ttl is None else now() + ttl,
    )


class TestFinish:
    """``finish``: results and completion fenced by the lease, dependents released."""

    pytestmark = pytest.mark.anyio

    async def test_finish_stores_results_and_completes(self, store: Backend) -> None:
        q, r = tq(store), rs(store)
        a, b = task(), task()
        child = task(depends_on=(a.id,))
        await q.enqueue([a, b, child])
        claimed = {c.task.id: c for c in await q.claim(["default"], "w", limit=10)}
        assert set(claimed) == {a.id, b.id}
        results = [result_of(a.id, ttl=3600), result_of(b.id, TaskStatus.ERROR)]
        report = await q.finish(
            [
                Completion(a.id, claimed[a.id].token),
                Completion(b.id, claimed[b.id].token, TaskStatus.ERROR),
            ],
            results,
            r,
            lease=30.0,
        )
        assert sorted(report.done) == sorted([a.id, b.id]) and report.stale == []
        assert report.released == [child.id]
        assert await r.get([a.id, b.id]) == results
        got = await q.get([a.id, b.id])
        assert [t.status for t in got if t is not None] == [TaskStatus.SUCCESS, TaskStatus.ERROR]

    async def test_finish_is_fenced_by_the_lease(self, store: Backend) -> None:
        q, r = tq(store), rs(store)
        a, b = task(), task()
        await q.enqueue([a, b])
        claimed = {c.task.id: c for c in await q.claim(["default"], "w", limit=10)}
        # a's lease is gone (cancelled meanwhile): neither its result nor its completion land.
        await q.cancel([a.id])
        report = await q.finish(
            [Completion(a.id, claimed[a.id].token), Completion(b.id, claimed[b.id].token)],
            [result_of(a.id), result_of(b.id)],
            r,
            lease=30.0,
        )
        assert report.stale == [a.id] and report.done == [b.id]
        assert await r.get_one(a.id) is None
        assert (await r.get_one(b.id)) is not None
        got = await q.get_one(a.id)
        assert got is not None and got.status is TaskStatus.CANCELLED

    async def test_finish_without_a_result_store_only_completes(self, store: Backend) -> None:
        q = tq(store)
        a = task()
        await q.enqueue([a])
        [c] = await q.claim(["default"], "w")
        report = await q.finish([Completion(a.id, c.token)], [], None, lease=30.0)
        assert report.done == [a.id]

    async def test_result_wait_is_woken_by_finish(self, store: Backend) -> None:
        q, r = tq(store), rs(store)
        tasks = [task() for _ in range(3)]
        await q.enqueue(tasks)
        claimed = await q.claim(["default"], "w", limit=10)
        got: dict[str, TaskResult | None] = {}
        ready = anyio.Event()
        waiting = 0

        async def waiter(tid: str) -> None:
            nonlocal waiting
            waiting += 1
            if waiting == len(tasks):
                ready.set()
            got[tid] = await r.wait(tid, 30.0)

        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                for t in tasks:
                    tg.start_soon(waiter, t.id)
                await ready.wait()
                await q.finish(
                    [Completion(c.task.id, c.token) for c in claimed],
                    [result_of(c.task.id) for c in claimed],
                    r,
                    lease=30.0,
                )
        assert all(got[t.id] is not None for t in tasks)

    async def test_a_dependency_listed_twice_is_released_once(self, store: Backend) -> None:
        q = tq(store)
        a = task()
        child = task(depends_on=(a.id, a.id))
        await q.enqueue([a, child])
        [c] = await q.claim(["default"], "w")
        assert c.task.id == a.id
        report = await q.complete([Completion(a.id, c.token)])
        assert report.released == [child.id]
        [c2] = await q.claim(["default"], "w")
        assert c2.task.id == child.id

    async def test_a_pending_dependency_listed_twice_is_released_once(self, store: Backend) -> None:
        q = tq(store)
        a = task()
        await q.enqueue([a])
        child = task(depends_on=(a.id, a.id, a.id))
        await q.enqueue([child])
        [c] = await q.claim(["default"], "w")
        report = await q.complete([Completion(a.id, c.token)])
        assert report.released == [child.id]
        [c2] = await q.claim(["default"], "w")
        assert c2.task.id == child.id
