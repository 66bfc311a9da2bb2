"""Inline mode (``OmniQ(inline=True)``) and ``drain``: tasks run at enqueue through the
real path (serialization, retries, dependencies, follow-ups, events, results)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import inline_tasks as it
import pytest

from omniq.core import OmniQ
from omniq.models import (
    EventType,
    ManualClock,
    SerializationError,
    TaskFailedError,
    TaskStatus,
    get_clock,
    use_clock,
)


@pytest.fixture
def clock() -> Iterator[ManualClock]:
    with use_clock(ManualClock()) as c:
        assert isinstance(c, ManualClock)
        yield c


@pytest.fixture(autouse=True)
def _calls() -> None:
    it.CALLS.clear()


@pytest.fixture
def oq(clock: ManualClock) -> Iterator[OmniQ]:
    with OmniQ("memory://", event_storage="memory://", inline=True) as q:
        yield q


def test_sync_enqueue_runs_the_task_and_stores_its_result(oq: OmniQ) -> None:
    task = oq.enqueue_sync(it.add, (2, 3))
    assert task.status is TaskStatus.SUCCESS
    assert it.CALLS == ["add 2 3"]
    result = oq.get_result_sync(task)
    assert result is not None and result.value == 5 and result.attempts == 1


@pytest.mark.anyio
async def test_async_enqueue_runs_sync_and_async_tasks(clock: ManualClock) -> None:
    async with OmniQ("memory://", inline=True) as oq:
        t1 = await oq.enqueue(it.async_mul, (4, 5))
        t2 = await oq.enqueue(it.add, (1, 1))
        assert (t1.status, t2.status) == (TaskStatus.SUCCESS, TaskStatus.SUCCESS)
        r1 = await oq.get_result(t1)
        assert r1 is not None and r1.value == 20
        assert it.CALLS == ["mul 4 5", "add 1 1"]


def test_a_result_that_cannot_be_serialized_fails_as_on_a_real_worker(
    clock: ManualClock,
) -> None:
    with OmniQ("memory://") as real:
        task = real.enqueue_sync(it.returns_opaque, max_retries=0)
        real.run_worker_sync(burst=True, handle_signals=False, worker_registry=False)
        on_worker = real.get_result_sync(task)
    assert on_worker is not None and on_worker.error is not None
    with OmniQ("memory://", inline=True) as oq:
        with pytest.raises(TaskFailedError) as caught:
            oq.enqueue_sync(it.returns_opaque, max_retries=0)
        info = caught.value.info
        assert (info.type, info.message) == (on_worker.error.type, on_worker.error.message)
        assert "SerializationError" in info.type
        assert "returns_opaque" in str(caught.value) and "SerializationError" in str(caught.value)
        stored = oq.get_task_sync(caught.value.task_id)
        assert stored is not None and stored.status is TaskStatus.ERROR


def test_arguments_that_cannot_be_serialized_fail_at_enqueue(oq: OmniQ) -> None:
    with pytest.raises(SerializationError):
        oq.enqueue_sync(it.note, (it.Opaque(),))
    assert it.CALLS == []


def test_retries_run_without_sleeping_their_backoff(
    oq: OmniQ, clock: ManualClock, tmp_path: Path
) -> None:
    start = clock.now()
    began = time.monotonic()
    task = oq.enqueue_sync(it.flaky, (str(tmp_path / "n"), 2), max_retries=3, retry_delay=3600)
    assert task.status is TaskStatus.SUCCESS and task.attempt == 3
    waited = clock.now() - start  # the jittered backoffs, passed on the clock
    assert waited > 1 and time.monotonic() - began < waited
    result = oq.get_result_sync(task)
    assert result is not None and result.value == 3 and result.attempts == 3
    kinds = [e.type for e in oq.get_events_sync(task)]
    assert kinds.count(EventType.RETRY) == 2 and kinds[-1] is EventType.COMPLETE


def test_a_task_out_of_retries_raises_with_the_workers_error(oq: OmniQ) -> None:
    with pytest.raises(TaskFailedError, match="ValueError: broken on purpose"):
        oq.enqueue_sync(it.always_fails, max_retries=1, retry_delay=10)
    assert it.CALLS == ["always_fails", "always_fails"]


def test_dependents_run_when_their_dependencies_finish(oq: OmniQ) -> None:
    first = oq.build(it.note, ("first",))
    second = oq.build(it.note, ("second",), depends_on=first)
    third = oq.build(it.note, ("third",), depends_on=[first, second])
    done = oq.enqueue_many_sync([third, second, first])
    assert [t.status for t in done] == [TaskStatus.SUCCESS] * 3
    assert it.CALLS == ["first", "second", "third"]
    later = oq.enqueue_sync(it.note, ("later",), depends_on=third)
    assert later.status is TaskStatus.SUCCESS


def test_follow_ups_run_on_success_and_on_failure(oq: OmniQ) -> None:
    ok = oq.enqueue_sync(
        it.add,
        (1, 2),
        on_success=oq.build(it.note, ("after success",)),
        on_failure=oq.build(it.note_failure, ("after failure",)),
    )
    assert ok.status is TaskStatus.SUCCESS
    assert it.CALLS == ["add 1 2", "after success"]
    it.CALLS.clear()
    with pytest.raises(TaskFailedError):
        oq.enqueue_sync(
            it.always_fails,
            max_retries=0,
            on_success=oq.build(it.note, ("after success",)),
            on_failure=oq.build(it.note_failure, ("after failure",)),
        )
    assert it.CALLS == ["always_fails", "after failure (error)"]


def test_events_are_written(oq: OmniQ) -> None:
    task = oq.enqueue_sync(it.add, (1, 1))
    kinds = [e.type for e in oq.get_events_sync(task)]
    assert kinds == [EventType.ENQUEUED, EventType.EXECUTING, EventType.COMPLETE]


def test_a_task_due_later_waits_for_the_clock(oq: OmniQ, clock: ManualClock) -> None:
    task = oq.enqueue_sync(it.note, ("later",), delay=600)
    assert task.status is TaskStatus.PENDING and it.CALLS == []
    assert oq.drain_sync().claimed == 0
    clock.advance(599)
    assert oq.drain_sync().claimed == 0
    clock.advance(1)
    stats = oq.drain_sync()
    assert (stats.claimed, stats.succeeded) == (1, 1)
    assert it.CALLS == ["later"]


def test_a_task_enqueued_by_a_running_task_runs_in_the_same_drain(oq: OmniQ) -> None:
    def spawn() -> str:  # a thread worker runs it; it enqueues through the facade
        oq.enqueue_sync(it.note, ("child",))
        return "parent"

    it.spawn = spawn  # type: ignore[attr-defined]
    try:
        task = oq.enqueue_sync("inline_tasks:spawn")
    finally:
        del it.spawn  # type: ignore[attr-defined]
    assert task.status is TaskStatus.SUCCESS
    assert it.CALLS == ["child"]


def test_drain_fires_due_schedules(clock: ManualClock) -> None:
    with OmniQ("memory://") as oq:
        oq.schedule_sync(it.note, interval=60, args=("tick",))
        assert oq.drain_sync().succeeded == 1  # an interval schedule's first run is due
        clock.advance(59)
        assert oq.drain_sync().claimed == 0
        clock.advance(1)
        assert oq.drain_sync().succeeded == 1
        clock.advance(600)  # ten runs missed: run_once fires one
        assert oq.drain_sync().succeeded == 1
        assert it.CALLS == ["tick", "tick", "tick"]


def test_without_a_manual_clock_inline_retries_skip_ahead(tmp_path: Path) -> None:
    before = get_clock()
    try:
        with OmniQ("memory://", inline=True) as oq:
            task = oq.enqueue_sync(
                it.flaky, (str(tmp_path / "n"), 1), max_retries=1, retry_delay=3600
            )
        assert task.status is TaskStatus.SUCCESS
    finally:
        from omniq.models import set_clock

        set_clock(before)


def test_a_ttl_runs_out_on_the_clock(oq: OmniQ, clock: ManualClock) -> None:
    task = oq.enqueue_sync(it.note, ("too late",), delay=120, ttl=60)
    assert task.status is TaskStatus.PENDING  # due at +120 s, expires 60 s after that
    clock.advance(181)
    oq.drain_sync()
    after = oq.get_task_sync(task.id)
    assert after is not None and after.status is TaskStatus.EXPIRED
    assert it.CALLS == []


@pytest.mark.anyio
async def test_async_inline_retries_dependencies_follow_ups_and_failures(
    clock: ManualClock, tmp_path: Path
) -> None:
    async with OmniQ("memory://", event_storage="memory://", inline=True) as oq:
        flaky = await oq.enqueue(it.flaky, (str(tmp_path / "n"), 1), retry_delay=600)
        assert flaky.status is TaskStatus.SUCCESS and flaky.attempt == 2
        kinds = [e.type for e in await oq.get_events(flaky)]
        assert kinds.count(EventType.RETRY) == 1
        first = oq.build(it.note, ("first",), on_success=oq.build(it.note, ("follow-up",)))
        second = oq.build(it.async_mul, (2, 3), depends_on=first)
        done = await oq.enqueue_many([second, first])
        assert [t.status for t in done] == [TaskStatus.SUCCESS] * 2
        assert it.CALLS == ["first", "follow-up", "mul 2 3"] or it.CALLS == [
            "first",
            "mul 2 3",
            "follow-up",
        ]
        with pytest.raises(TaskFailedError, match="ValueError: broken on purpose"):
            await oq.enqueue(it.always_fails, max_retries=0)
        with pytest.raises(TaskFailedError, match="SerializationError"):
            await oq.enqueue(it.returns_opaque, max_retries=0)
