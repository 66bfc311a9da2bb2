"""Paused queues: ``pause_queue`` stops claims (and handovers) from leasing a queue's
tasks, inside the engine, until ``resume_queue``; enqueue still works.

What "once ``pause_queue`` returns" means, checked by
``test_no_task_is_leased_after_pause_returns``: every task of the queue that any claim
hands out was already leased (``running`` in the store) when ``pause_queue`` returned,
and a claim that starts after it returned hands out none.
"""

from __future__ import annotations

import contextlib
import time

import anyio
import anyio.lowlevel
import pytest

from omniq.models import ClaimedTask, QueueInfo, TaskStatus
from omniq.storage import Backend, Completion, LeaseRef, TaskQueueStorage, open_storage
from omniq.storage.testing._specs import BackendSpec
from omniq.storage.testing.helpers import poll_until, task, tq


class TestPausedQueues:
    """pause_queue / resume_queue / paused_queues / list_queues."""

    pytestmark = pytest.mark.anyio

    async def test_claim_skips_a_paused_queue_but_not_others(self, store: Backend) -> None:
        q = tq(store)
        a1, a2, b1 = task(queue="a"), task(queue="a", priority=9), task(queue="b")
        await q.enqueue([a1, a2, b1])
        assert await q.pause_queue("a") is True
        assert await q.claim(["a"], "w1", limit=5) == []
        got = await q.claim(["a", "b"], "w1", limit=5)
        assert [c.task.id for c in got] == [b1.id]
        assert await q.claim(["b", "a"], "w1", limit=5) == []
        for t in (a1, a2):
            stored = await q.get_one(t.id)
            assert stored is not None and stored.status is TaskStatus.PENDING
            assert stored.attempt == 0

    async def test_resume_releases_the_queue(self, store: Backend) -> None:
        q = tq(store)
        t = task(queue="a")
        await q.enqueue([t])
        await q.pause_queue("a")
        assert await q.claim(["a"], "w1") == []
        assert await q.resume_queue("a") is True
        [c] = await q.claim(["a"], "w1")
        assert c.task.id == t.id and c.task.attempt == 1

    async def test_enqueue_into_a_paused_queue_is_claimable_after_resume(
        self, store: Backend
    ) -> None:
        q = tq(store)
        await q.pause_queue("a")
        tasks = [task(queue="a") for _ in range(3)]
        stored = await q.enqueue(tasks)
        assert [s.status for s in stored] == [TaskStatus.PENDING] * 3
        assert await q.count(queue="a", status=TaskStatus.PENDING) == 3
        assert await q.claim(["a"], "w1", limit=10) == []
        await q.resume_queue("a")
        got = await q.claim(["a"], "w1", limit=10)
        assert sorted(c.task.id for c in got) == sorted(t.id for t in tasks)

    async def test_pause_and_resume_are_idempotent(self, store: Backend) -> None:
        q = tq(store)
        assert await q.paused_queues() == []
        assert await q.pause_queue("b") is True
        assert await q.pause_queue("b") is False
        assert await q.pause_queue("a") is True
        assert await q.paused_queues() == ["a", "b"]
        assert await q.resume_queue("b") is True
        assert await q.resume_queue("b") is False
        assert await q.resume_queue("never-paused") is False
        assert await q.paused_queues() == ["a"]

    async def test_list_queues_shows_counts_and_empty_paused_queues(self, store: Backend) -> None:
        q = tq(store)
        await q.enqueue([task(queue="a"), task(queue="a"), task(queue="b")])
        [c] = await q.claim(["a"], "w1")
        await q.complete([Completion(c.task.id, c.token)])
        await q.pause_queue("empty")
        await q.pause_queue("b")
        infos = {i.name: i for i in await q.list_queues()}
        want = {TaskStatus.PENDING: 1, TaskStatus.SUCCESS: 1}
        assert sorted(infos) == ["a", "b", "empty"]
        assert infos["a"] == QueueInfo(
            "a",
            paused=False,
            counts={s: want.get(s, 0) for s in TaskStatus},
        )
        assert infos["b"].paused and infos["b"].count("pending") == 1 and infos["b"].total == 1
        assert infos["empty"].paused and infos["empty"].total == 0
        await q.resume_queue("empty")
        assert "empty" not in {i.name for i in await q.list_queues()}

    async def test_a_task_leased_before_the_pause_finishes(self, store: Backend) -> None:
        q = tq(store)
        t1, t2 = task(queue="a"), task(queue="a")
        await q.enqueue([t1, t2])
        [c] = await q.claim(["a"], "w1")
        await q.pause_queue("a")
        assert await q.renew([LeaseRef.of(c)], 30.0) == []
        report = await q.complete([Completion(c.task.id, c.token)])
        assert report.done == [c.task.id]
        assert await q.claim(["a"], "w1") == []

    async def test_a_lapsed_lease_of_a_paused_queue_is_not_leased_again(
        self, store: Backend
    ) -> None:
        q = tq(store)
        t = task(queue="a")
        await q.enqueue([t])
        await q.claim(["a"], "w1", lease=0.2)
        await q.pause_queue("a")
        await _wait_lapsed(q, t.id)
        assert await q.claim(["a"], "w2") == []
        await q.resume_queue("a")
        [c] = await q.claim(["a"], "w2")
        assert c.task.id == t.id and c.task.attempt == 2

    async def test_resume_wakes_a_worker_waiting_on_the_queue(self, store: Backend) -> None:
        q = tq(store)
        await q.pause_queue("a")
        await q.enqueue([task(queue="a")])
        woke_at: list[float] = []

        async def waiter() -> None:
            await q.wait_for_work(["a"], 20.0)
            woke_at.append(time.monotonic())

        with anyio.fail_after(15):
            async with anyio.create_task_group() as tg:
                tg.start_soon(waiter)
                await anyio.sleep(0.2)  # let the waiter park (not synchronization of the result)
                resumed = time.monotonic()
                await q.resume_queue("a")
        assert woke_at and woke_at[0] - resumed < 5.0
        assert len(await q.claim(["a"], "w1")) == 1

    async def test_pause_through_one_connection_holds_for_another(
        self, store_and_url: tuple[Backend, str], backend_spec: BackendSpec
    ) -> None:
        """(A backend whose store one object owns plays both parts.)"""
        store, url = store_and_url
        t = task(queue="a")
        second = open_storage(url) if backend_spec.shared else contextlib.nullcontext(store)
        async with second as other:
            q, q2 = tq(store), tq(other)
            await q.enqueue([t])
            await q.pause_queue("a")
            assert await q2.paused_queues() == ["a"]
            assert await q2.claim(["a"], "w2") == []
            assert await q2.resume_queue("a") is True
            [c] = await q.claim(["a"], "w1")
            assert c.task.id == t.id

    async def test_a_paused_queue_is_never_handed_over(
        self, store: Backend, backend_spec: BackendSpec
    ) -> None:
        q = tq(store)
        await q.pause_queue("default")
        got: list[ClaimedTask] = []
        t = task()
        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:

                async def waiter() -> None:
                    await q.wait_for_push(
                        ["default"], 1.0, worker_id="w-idle", lease=30.0, inbox=got.extend
                    )

                tg.start_soon(waiter)
                if backend_spec.waiter_registered is not None:
                    await backend_spec.waiter_registered(store, "w-idle")
                await q.enqueue([t])
                # A handover leases the task inside the enqueue: it would be running now.
                stored = await q.get_one(t.id)
                assert stored is not None and stored.status is TaskStatus.PENDING
        assert got == []
        assert await q.close_inbox("w-idle") == []
        await q.resume_queue("default")
        [c] = await q.claim(["default"], "w1")
        assert c.task.id == t.id

    async def test_no_task_is_leased_after_pause_returns(
        self, store_and_url: tuple[Backend, str], backend_spec: BackendSpec
    ) -> None:
        """Claimers race a pause: what they got was running when pause returned, and
        the claims that started after it got nothing."""
        store, url = store_and_url
        q = tq(store)
        n = 2000  # enough that claimers on a fast engine are still busy when the pause lands
        for _ in range(0, n, 200):
            await q.enqueue([task(queue="a") for _ in range(200)])
        paused = anyio.Event()
        some = anyio.Event()  # the claimers got some tasks: time to pause
        enough = anyio.Event()  # enough claims started after the pause returned
        got: list[str] = []
        after: list[list[str]] = []  # results of claims started after pause returned

        async def claimer(qq: TaskQueueStorage, name: str) -> None:
            while not enough.is_set():
                started_after = paused.is_set()
                claimed = await qq.claim(["a"], name, limit=3, lease=300)
                ids = [c.task.id for c in claimed]
                got.extend(ids)
                if len(got) >= 12:
                    some.set()
                if started_after:
                    after.append(ids)
                    if len(after) >= 12:
                        enough.set()
                await anyio.lowlevel.checkpoint()  # fair turns where a claim never suspends

        async with contextlib.AsyncExitStack() as stack:
            others = (
                [await stack.enter_async_context(open_storage(url)) for _ in range(2)]
                if backend_spec.shared
                else []
            )
            queues = [q] + [tq(b) for b in others]
            with anyio.fail_after(60):
                async with anyio.create_task_group() as tg:
                    for i in range(4):
                        tg.start_soon(claimer, queues[i % len(queues)], f"w{i}")
                    await some.wait()
                    await q.pause_queue("a")
                    paused.set()
                    running = {t.id for t in await q.list(status=TaskStatus.RUNNING, limit=n)}
        assert len(got) < n, "the claimers drained the queue before the pause"
        assert set(got) <= running, "a task was leased after pause_queue returned"
        assert all(ids == [] for ids in after)
        assert await q.count(queue="a", status=TaskStatus.RUNNING) == len(got)
        assert await q.count(queue="a", status=TaskStatus.PENDING) == n - len(got)


async def _wait_lapsed(q: TaskQueueStorage, task_id: str) -> None:
    """Until the lease has lapsed and the task is back to pending (a claim of the paused
    queue or a sweep may be what puts it back)."""

    async def back() -> bool:
        await q.reclaim_expired()
        await q.claim(["a"], "w-probe")  # may reclaim inline; must lease nothing
        s = await q.get_one(task_id)
        return s is not None and s.status is TaskStatus.PENDING

    await poll_until(back, bool, deadline=10)
