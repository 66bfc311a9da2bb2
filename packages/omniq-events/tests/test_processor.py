"""AsyncEventProcessor: subscriptions, live tail, replay, queries."""

from __future__ import annotations

import anyio
import pytest

from omniq.events import AsyncEventLogger, AsyncEventProcessor
from omniq.models import EventType, TaskEvent, now
from omniq.storage._interfaces import EventStorage

from .conftest import wait_until

pytestmark = pytest.mark.anyio

E = EventType


def ev(task_id: str, type: EventType = E.ENQUEUED, ts: float | None = None) -> TaskEvent:
    if ts is None:
        return TaskEvent(task_id=task_id, type=type)
    return TaskEvent(task_id=task_id, type=type, timestamp=ts)


async def test_query_by_task_type_and_range(store: EventStorage) -> None:
    t = 1_000_000.0
    await store.append(
        [
            ev("a", E.ENQUEUED, t),
            ev("a", E.EXECUTING, t + 1),
            ev("b", E.ENQUEUED, t + 2),
            ev("a", E.COMPLETE, t + 3),
            ev("b", E.ERROR, t + 4),
        ]
    )
    p = AsyncEventProcessor(store)
    assert [e.type for e in await p.history("a")] == [E.ENQUEUED, E.EXECUTING, E.COMPLETE]
    assert [e.task_id for e in await p.query(types=E.ENQUEUED)] == ["a", "b"]
    assert [e.type for e in await p.query(types=[E.COMPLETE, E.ERROR])] == [E.COMPLETE, E.ERROR]
    got = await p.query(since=t + 1, until=t + 3)
    assert [e.timestamp for e in got] == [t + 1, t + 2]
    assert len(await p.query(limit=2)) == 2
    assert [e.type for e in await p.query(task_id="b", since=t + 3)] == [E.ERROR]


async def test_replay_pages_through_ties_without_duplicates_or_gaps(store: EventStorage) -> None:
    t = 2_000_000.0
    # 25 events sharing one timestamp straddle every page boundary of size 4
    events = [ev(f"x{i}", ts=t) for i in range(25)] + [ev(f"y{i}", ts=t + 1 + i) for i in range(7)]
    events.append(ev("late", ts=t + 100))
    await store.append(events)
    p = AsyncEventProcessor(store, page_size=4)
    got = [e async for e in p.replay(t, t + 50)]
    assert len(got) == 32 and len({e.id for e in got}) == 32
    assert [e.timestamp for e in got] == sorted(e.timestamp for e in got)
    only = [e async for e in p.replay(types=E.ENQUEUED, task_id="late")]
    assert [e.task_id for e in only] == ["late"]


async def test_replay_to_handlers(store: EventStorage) -> None:
    t = 3_000_000.0
    await store.append([ev(f"t{i}", E.COMPLETE if i % 2 else E.ERROR, t + i) for i in range(10)])
    p = AsyncEventProcessor(store)
    completed: list[str] = []
    p.subscribe(lambda e: completed.append(e.task_id), E.COMPLETE)
    assert await p.replay_to_handlers(t, t + 6) == 6
    assert completed == ["t1", "t3", "t5"]


async def test_subscribe_sync_and_async_handlers_follow_the_log(store: EventStorage) -> None:
    got_all: list[TaskEvent] = []
    got_errors: list[TaskEvent] = []
    done = anyio.Event()

    async def on_error(e: TaskEvent) -> None:
        got_errors.append(e)
        done.set()

    def broken(e: TaskEvent) -> None:
        raise RuntimeError("handler bug")

    async with AsyncEventLogger(store, flush_interval=0.01) as elog:
        p = AsyncEventProcessor(store, logger=elog, poll_interval=0.01)
        p.subscribe(got_all.append)
        sub = p.subscribe(on_error, [E.ERROR])
        p.subscribe(broken, E.EXECUTING)
        async with p:
            elog.enqueued("t1")
            elog.executing("t1", "w", 1)
            elog.error("t1", ValueError("nope"), "w", 1, 0.5)
            with anyio.fail_after(10):
                await done.wait()

            async def three() -> bool:
                return len(got_all) == 3

            await wait_until(three, what="all handlers")
        assert [e.type for e in got_all] == [E.ENQUEUED, E.EXECUTING, E.ERROR]
        assert got_errors[0].metadata["error_type"] == "ValueError"
        assert p.handler_errors == 1 and sub.calls == 1
        p.unsubscribe(sub)
        assert sub not in p.subscriptions


async def test_tail_starts_now_and_skips_older_events(store: EventStorage) -> None:
    await store.append([ev("before", ts=now() - 10)])
    p = AsyncEventProcessor(store, poll_interval=0.01)
    got: list[str] = []
    async with anyio.create_task_group() as tg:

        async def follow() -> None:
            async for e in p.tail():
                got.append(e.task_id)
                if len(got) == 2:
                    tg.cancel_scope.cancel()

        tg.start_soon(follow)
        # stamped ahead so they are newer than the moment tail() starts, however late
        await store.append([ev("n1", ts=now() + 1)])
        await store.append([ev("n2", ts=now() + 2)])
    assert got == ["n1", "n2"]


async def test_tail_ties_and_late_arrivals_no_duplicates_no_gaps(store: EventStorage) -> None:
    """Ties in timestamp across polls and pages, and an event stored after newer ones,
    are each delivered exactly once."""
    t = now()
    p = AsyncEventProcessor(store, poll_interval=0.005, page_size=3, lookback=5.0)
    got: list[TaskEvent] = []
    stored: list[TaskEvent] = []
    async with anyio.create_task_group() as tg:
        step = anyio.Event()
        target = 0

        async def follow() -> None:
            nonlocal step
            async for e in p.tail(t - 1):
                got.append(e)
                if len(got) == target:
                    step.set()

        tg.start_soon(follow)

        async def put(batch: list[TaskEvent]) -> None:
            nonlocal step, target
            step = anyio.Event()
            target += len(batch)
            stored.extend(batch)
            await store.append(batch)
            with anyio.fail_after(10):
                await step.wait()

        await put([ev(f"tie{i}", ts=t) for i in range(7)])
        await put([ev(f"tie-more{i}", ts=t) for i in range(4)])  # same timestamp, later
        await put([ev("newer", ts=t + 1)])
        await put([ev("late", ts=t + 0.5)])  # stored after a newer one
        await put([ev(f"burst{i}", ts=t + 2) for i in range(10)])
        tg.cancel_scope.cancel()
    assert len(got) == len(stored) == len({e.id for e in got})
    assert {e.id for e in got} == {e.id for e in stored}


async def test_tail_filters(store: EventStorage) -> None:
    p = AsyncEventProcessor(store, poll_interval=0.005)
    got: list[TaskEvent] = []
    t = now()
    async with anyio.create_task_group() as tg:

        async def follow() -> None:
            async for e in p.tail(t - 1, types=E.COMPLETE, task_id="a"):
                got.append(e)
                tg.cancel_scope.cancel()

        tg.start_soon(follow)
        await store.append([ev("b", E.COMPLETE, t), ev("a", E.ENQUEUED, t), ev("a", E.COMPLETE, t)])
    assert [(e.task_id, e.type) for e in got] == [("a", E.COMPLETE)]


async def test_processor_from_a_given_start(store: EventStorage) -> None:
    t = now()
    await store.append([ev("old", ts=t - 100), ev("recent", ts=t - 1)])
    p = AsyncEventProcessor(store, poll_interval=0.005)
    seen: list[str] = []
    p.subscribe(lambda e: seen.append(e.task_id))
    await p.start(since=t - 50)
    try:

        async def one() -> bool:
            return seen == ["recent"]

        await wait_until(one, what="catch-up")
    finally:
        await p.aclose()
