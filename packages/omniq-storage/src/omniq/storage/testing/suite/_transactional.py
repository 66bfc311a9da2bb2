"""Transactional enqueue: ``enqueue_in_transaction`` writes tasks in the caller's open
transaction (rollback: no task; commit: stored, claimable, waiters woken), or, on a
backend that keeps tasks outside the caller's database, refuses with
``TransactionalEnqueueError`` naming the alternative.
"""

from __future__ import annotations

import anyio
import pytest

from omniq.models import EventType, Task, TaskEvent, TaskStatus, TransactionalEnqueueError
from omniq.storage import CASCADE_REASON, Backend, ResultRecord
from omniq.storage.testing._specs import BackendSpec
from omniq.storage.testing.helpers import rs, task, tq


class TestTransactionalEnqueue:
    """enqueue_in_transaction over every backend."""

    pytestmark = pytest.mark.anyio

    async def test_refused_or_joined(
        self, store_and_url: tuple[Backend, str], backend_spec: BackendSpec
    ) -> None:
        store, url = store_and_url
        q = tq(store)
        t = task()
        if backend_spec.transaction is None:
            with pytest.raises(TransactionalEnqueueError, match="after the commit"):
                await q.enqueue_in_transaction(object(), [t])
            assert await q.get_one(t.id) is None
            return
        async with backend_spec.transaction(url) as tx:
            [stored] = await q.enqueue_in_transaction(tx.connection, [t])
            assert stored.id == t.id and stored.status is TaskStatus.PENDING
            await tx.commit()
        got = await q.get_one(t.id)
        assert got is not None and got.status is TaskStatus.PENDING

    @pytest.mark.backends_with("transactional")
    async def test_rollback_leaves_no_task(
        self, store_and_url: tuple[Backend, str], backend_spec: BackendSpec
    ) -> None:
        store, url = store_and_url
        assert backend_spec.transaction is not None
        q = tq(store)
        parent = task(key="k1")
        child = task(depends_on=(parent.id,))
        async with backend_spec.transaction(url) as tx:
            await q.enqueue_in_transaction(tx.connection, [parent, child])
            await tx.rollback()
        assert await q.get([parent.id, child.id]) == [None, None]
        assert await q.claim(["default"], "w1", limit=5) == []
        # The key was never taken: a new task may hold it.
        again = task(key="k1")
        [stored] = await q.enqueue([again])
        assert stored.id == again.id

    @pytest.mark.backends_with("transactional")
    async def test_commit_stores_keys_and_dependency_edges(
        self, store_and_url: tuple[Backend, str], backend_spec: BackendSpec
    ) -> None:
        store, url = store_and_url
        assert backend_spec.transaction is not None
        q = tq(store)
        parent = task(key="k2")
        child = task(depends_on=(parent.id,))
        async with backend_spec.transaction(url) as tx:
            await q.enqueue_in_transaction(tx.connection, [parent, child])
            # Not visible to other connections before the commit.
            assert await q.get_one(parent.id) is None
            # Inside the same transaction the key is already held.
            [dup] = await q.enqueue_in_transaction(tx.connection, [task(key="k2")])
            assert dup.id == parent.id
            await tx.commit()
        [c] = await q.claim(["default"], "w1", limit=5)
        assert c.task.id == parent.id  # the child waits for its dependency
        [dup] = await q.enqueue([task(key="k2")])
        assert dup.id == parent.id

    @pytest.mark.backends_with("transactional")
    async def test_a_task_born_cancelled_has_its_result_with_the_commit(
        self, store_and_url: tuple[Backend, str], backend_spec: BackendSpec
    ) -> None:
        """With a record of the store's own results, the ``cancelled`` result of a task
        stored cancelled (its dependency had already failed) is part of the caller's
        transaction: gone with a rollback, stored with the commit."""
        store, url = store_and_url
        assert backend_spec.transaction is not None
        q, results = tq(store), rs(store)
        failed = task()
        await q.enqueue([failed])
        await q.cancel([failed.id])
        record = ResultRecord(results)
        for commit in (False, True):
            born = task(depends_on=(failed.id,))
            async with backend_spec.transaction(url) as tx:
                [got] = await q.enqueue_in_transaction(tx.connection, [born], record=record)
                assert got.status is TaskStatus.CANCELLED
                await (tx.commit() if commit else tx.rollback())
            [res] = await results.get([born.id])
            if not commit:
                assert res is None and await q.get_one(born.id) is None
                continue
            assert res is not None and res.status is TaskStatus.CANCELLED
            assert res.error is not None and res.error.message == CASCADE_REASON

    @pytest.mark.backends_with("transactional")
    async def test_a_waiting_worker_wakes_after_commit(
        self, store_and_url: tuple[Backend, str], backend_spec: BackendSpec
    ) -> None:
        store, url = store_and_url
        assert backend_spec.transaction is not None
        q = tq(store)
        woke: list[bool] = []
        async with backend_spec.transaction(url) as tx, anyio.create_task_group() as tg:

            async def wait() -> None:
                woke.append(await q.wait_for_work(["default"], 20.0))

            await q.enqueue_in_transaction(tx.connection, [task()])
            tg.start_soon(wait)
            await anyio.wait_all_tasks_blocked()
            assert woke == []  # nothing visible yet: the waiter waits
            await tx.commit()
        assert woke == [True]
        assert len(await q.claim(["default"], "w1")) == 1

    @pytest.mark.backends_with("transactional")
    async def test_a_connection_of_another_kind_is_refused(
        self, store_and_url: tuple[Backend, str]
    ) -> None:
        q = tq(store_and_url[0])
        with pytest.raises(TransactionalEnqueueError):
            await q.enqueue_in_transaction(object(), [task()])

    async def test_events_join_the_transaction_of_their_tasks(
        self, store_and_url: tuple[Backend, str], backend_spec: BackendSpec
    ) -> None:
        store, url = store_and_url
        q = tq(store)
        if store.events is None:
            return  # no event store on this backend
        ev = [_event(task())]
        if backend_spec.transaction is None:
            assert await store.events.append_in_transaction(object(), ev, tasks=q) is False
            assert await store.events.count() == 0
            return
        for commit in (False, True):
            async with backend_spec.transaction(url) as tx:
                t = task()
                await q.enqueue_in_transaction(tx.connection, [t])
                ev = [_event(t)]
                assert await store.events.append_in_transaction(tx.connection, ev, tasks=q)
                await (tx.commit() if commit else tx.rollback())
            got = await store.events.query(task_id=t.id)
            assert [e.id for e in got] == ([ev[0].id] if commit else [])


def _event(t: Task) -> TaskEvent:
    return TaskEvent(task_id=t.id, type=EventType.ENQUEUED, queue=t.queue)
