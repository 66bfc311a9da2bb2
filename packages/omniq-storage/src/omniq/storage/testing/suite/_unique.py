"""Unique jobs in ``enqueue``: the ``unique_for`` window keeps an idempotency key
reserved whatever the holder's state, and ``on_conflict="replace"`` rewrites a pending
holder's payload and eta (debounce)."""

from __future__ import annotations

import anyio
import pytest

from omniq.models import Payload, TaskStatus, now
from omniq.storage import Backend, Completion
from omniq.storage.testing.helpers import task, tq


def _p(text: str) -> Payload:
    return Payload("msgpack", text.encode())


class TestUniqueJobs:
    """``enqueue`` honours ``Task.unique_for`` and ``Task.on_conflict``."""

    pytestmark = pytest.mark.anyio

    async def test_window_returns_a_finished_task(self, store: Backend) -> None:
        q = tq(store)
        first = task(key="u-1", unique_for=3600.0)
        await q.enqueue([first])
        [c] = await q.claim(["default"], "w")
        await q.complete([Completion(c.task.id, c.token)])
        [again] = await q.enqueue([task(key="u-1")])
        assert again.id == first.id
        assert again.status is TaskStatus.SUCCESS
        assert await q.count() == 1

    async def test_window_holds_for_a_cancelled_task(self, store: Backend) -> None:
        q = tq(store)
        first = task(key="u-2", unique_for=3600.0)
        await q.enqueue([first])
        await q.cancel([first.id])
        [again] = await q.enqueue([task(key="u-2", unique_for=3600.0)])
        assert again.id == first.id and again.status is TaskStatus.CANCELLED

    async def test_key_is_free_after_the_window(self, store: Backend) -> None:
        q = tq(store)
        old = task(key="u-3", unique_for=10.0, created_at=now() - 60)
        await q.enqueue([old])
        # live past its window: still the holder, as a plain key
        [live] = await q.enqueue([task(key="u-3")])
        assert live.id == old.id
        [c] = await q.claim(["default"], "w")
        await q.complete([Completion(c.task.id, c.token)])
        fresh = task(key="u-3")
        [got] = await q.enqueue([fresh])
        assert got.id == fresh.id
        assert await q.count() == 2

    async def test_same_key_twice_in_one_batch(self, store: Backend) -> None:
        q = tq(store)
        a = task(key="u-4", unique_for=60.0)
        b = task(key="u-4", unique_for=60.0)
        out = await q.enqueue([a, b])
        assert [t.id for t in out] == [a.id, a.id]
        assert await q.count() == 1

    async def test_replace_rewrites_a_pending_task(self, store: Backend) -> None:
        q = tq(store)
        later = now() + 3600
        first = task(key="u-5", payload=_p("one"), eta=later)
        await q.enqueue([first])
        assert await q.claim(["default"], "w") == []
        [got] = await q.enqueue([task(key="u-5", payload=_p("two"), on_conflict="replace")])
        assert got.id == first.id
        stored = await q.get_one(first.id)
        assert stored is not None and stored.status is TaskStatus.PENDING
        assert stored.payload == _p("two") and stored.eta is None
        [c] = await q.claim(["default"], "w")
        assert c.task.id == first.id and c.task.payload == _p("two")
        assert await q.count() == 1

    async def test_replace_moves_the_eta_later(self, store: Backend) -> None:
        q = tq(store)
        first = task(key="u-6", payload=_p("one"))
        await q.enqueue([first])
        later = now() + 3600
        [got] = await q.enqueue(
            [task(key="u-6", payload=_p("two"), eta=later, on_conflict="replace")]
        )
        assert got.id == first.id
        stored = await q.get_one(first.id)
        assert stored is not None and stored.eta == pytest.approx(later)
        assert stored.payload == _p("two")
        assert await q.claim(["default"], "w") == []

    async def test_replace_leaves_a_running_task_alone(self, store: Backend) -> None:
        q = tq(store)
        first = task(key="u-7", payload=_p("one"))
        await q.enqueue([first])
        [c] = await q.claim(["default"], "w")
        [got] = await q.enqueue([task(key="u-7", payload=_p("two"), on_conflict="replace")])
        assert got.id == first.id and got.payload == _p("one")
        assert got.status is TaskStatus.RUNNING
        stored = await q.get_one(first.id)
        assert stored is not None and stored.payload == _p("one")
        assert (await q.complete([Completion(c.task.id, c.token)])).done == [first.id]

    async def test_replace_leaves_a_finished_task_in_its_window_alone(self, store: Backend) -> None:
        q = tq(store)
        first = task(key="u-8", payload=_p("one"), unique_for=3600.0)
        await q.enqueue([first])
        [c] = await q.claim(["default"], "w")
        await q.complete([Completion(c.task.id, c.token)])
        [got] = await q.enqueue([task(key="u-8", payload=_p("two"), on_conflict="replace")])
        assert got.id == first.id and got.status is TaskStatus.SUCCESS
        assert got.payload == _p("one")
        assert await q.claim(["default"], "w") == []

    async def test_concurrent_enqueues_store_one_task(self, store: Backend) -> None:
        q = tq(store)
        got: list[str] = []

        async def one() -> None:
            [t] = await q.enqueue([task(key="u-9", unique_for=3600.0)])
            got.append(t.id)

        async with anyio.create_task_group() as tg:
            for _ in range(8):
                tg.start_soon(one)
        assert len(got) == 8 and len(set(got)) == 1
        assert await q.count() == 1
        [c] = await q.claim(["default"], "w")
        await q.complete([Completion(c.task.id, c.token)])

        async def replace(n: int) -> None:
            [t] = await q.enqueue([task(key="u-9", payload=_p(str(n)), on_conflict="replace")])
            got.append(t.id)

        async with anyio.create_task_group() as tg:
            for n in range(8):
                tg.start_soon(replace, n)
        assert len(set(got)) == 1 and await q.count() == 1
        stored = await q.get_one(got[0])
        assert stored is not None and stored.status is TaskStatus.SUCCESS
        assert stored.payload is None  # finished: never replaced
