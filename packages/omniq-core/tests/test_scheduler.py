"""AsyncScheduler on real stores with an injected clock: cron (seconds, time zones, DST),
interval, one-shot, max runs / end date, misfire policies, pause/resume, crash recovery,
many schedulers at once, and the run loop's sleeping."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import anyio
import pytest

from omniq.events import AsyncEventLogger
from omniq.models import EventType, ScheduleError, ScheduleState
from omniq.queue import AsyncScheduler, AsyncTaskQueue, run_task
from omniq.queue._scheduler import run_task_id
from omniq.storage import Backend, open_storage

pytestmark = pytest.mark.anyio

FUNC = "omniq_sched_tests:job"
BERLIN = ZoneInfo("Europe/Berlin")


class ManualClock:
    """Time moves only when the test says so; ``sleep`` waits for it."""

    def __init__(self, t: float) -> None:
        self.t = t
        self.sleeps: list[float] = []
        self._changed = anyio.Event()

    def now(self) -> float:
        return self.t

    def set(self, t: float) -> None:
        self.t = t
        self._changed.set()
        self._changed = anyio.Event()

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        target = self.t + seconds
        while self.t < target:
            await self._changed.wait()


async def until(cond: Callable[[], bool]) -> None:
    """Poll ``cond`` (the caller bounds the wait with ``fail_after``)."""
    while True:
        if cond():
            return
        await anyio.sleep(0.001)


def ts(y: int, mo: int, d: int, h: int = 0, mi: int = 0, s: int = 0, tz: object = UTC) -> float:
    return datetime(y, mo, d, h, mi, s, tzinfo=tz).timestamp()  # type: ignore[arg-type]


T0 = ts(2030, 1, 1)


@pytest.fixture
async def backend(tmp_path: Path) -> AsyncIterator[Backend]:
    async with open_storage(f"sqlite:///{tmp_path / 'sched.db'}") as b:
        yield b


def make(
    backend: Backend, clock: ManualClock, logger: AsyncEventLogger | None = None, **kw: object
) -> AsyncScheduler:
    assert backend.tasks is not None and backend.schedules is not None
    queue = AsyncTaskQueue(backend.tasks, backend.results, logger)
    return AsyncScheduler(queue, backend.schedules, clock=clock, **kw)  # type: ignore[arg-type]


async def fired_at(s: AsyncScheduler, *instants: float) -> list[float]:
    """Tick at each instant; the due instants of every run fired."""
    out: list[float] = []
    for t in instants:
        report = await s.tick(t)
        out.extend(task.metadata["scheduled_for"] for task in report.fired)
    return out


async def test_interval_fires_each_due_run_once_with_derived_ids(backend: Backend) -> None:
    clock = ManualClock(T0)
    s = make(backend, clock)
    sched = await s.schedule(FUNC, interval=10, start_at=T0 + 5, args=(1,), queue="q")
    assert sched.next_run_at == T0 + 5
    assert await fired_at(s, T0, T0 + 4.9) == []
    assert await fired_at(s, T0 + 5, T0 + 5, T0 + 14.9, T0 + 15.2) == [T0 + 5, T0 + 15]
    tasks = await s.queue.list_tasks()
    assert [t.id for t in tasks] == [run_task_id(sched.id, T0 + 5), run_task_id(sched.id, T0 + 15)]
    assert {t.queue for t in tasks} == {"q"} and tasks[0].eta is None
    assert (await s.get(sched.id)).runs == 2  # type: ignore[union-attr]


async def test_cron_with_seconds_and_five_fields(backend: Backend) -> None:
    clock = ManualClock(T0 + 1)
    s = make(backend, clock)
    every15 = await s.schedule(FUNC, cron="*/15 * * * * *")
    hourly = await s.schedule(FUNC, cron="0 * * * *")
    assert every15.next_run_at == T0 + 15 and hourly.next_run_at == T0 + 3600
    got = await fired_at(s, T0 + 15, T0 + 30, T0 + 31, T0 + 3600)
    # At T0+3600 the every-15-s schedule's missed runs collapse into one (run_once).
    assert got == [T0 + 15, T0 + 30, T0 + 45, T0 + 3600]
    with pytest.raises(ScheduleError):
        await s.schedule(FUNC, cron="not a cron")


async def test_cron_follows_wall_clock_across_dst(backend: Backend) -> None:
    # 09:00 in Berlin is 08:00 UTC in winter and 07:00 UTC in summer (clocks go forward
    # on 2030-03-31).
    start = ts(2030, 3, 29, 12)
    clock = ManualClock(start)
    s = make(backend, clock)
    nine = await s.schedule(FUNC, cron="0 9 * * *", timezone="Europe/Berlin")
    assert nine.next_run_at == ts(2030, 3, 30, 9, tz=BERLIN) == ts(2030, 3, 30, 8)
    got = await fired_at(s, ts(2030, 3, 30, 8), ts(2030, 3, 31, 7), ts(2030, 4, 1, 7))
    assert got == [ts(2030, 3, 30, 8), ts(2030, 3, 31, 7), ts(2030, 4, 1, 7)]
    # 02:30 does not exist on the spring-forward day: it runs right after the jump.
    clock.set(ts(2030, 3, 30, 12))
    skipped = await s.schedule(FUNC, cron="30 2 * * *", timezone="Europe/Berlin")
    assert skipped.next_run_at is not None
    assert ts(2030, 3, 31, 1) <= skipped.next_run_at <= ts(2030, 3, 31, 1, 30)
    # Autumn: 02:30 happens twice on 2030-10-27 and runs once.
    clock.set(ts(2030, 10, 26, 12))
    twice = await s.schedule(FUNC, cron="30 2 * * *", timezone="Europe/Berlin")
    first = twice.next_run_at
    assert first == ts(2030, 10, 27, 0, 30)  # 02:30 CEST
    runs = [
        t.metadata["scheduled_for"]
        for t in (await s.tick(ts(2030, 10, 27, 0, 31))).fired
        + (await s.tick(ts(2030, 10, 27, 1, 31))).fired
        if t.metadata["schedule_id"] == twice.id
    ]
    assert runs == [first]
    assert (await s.get(twice.id)).next_run_at == ts(2030, 10, 28, 1, 30)  # type: ignore[union-attr]


async def test_one_shot_max_runs_and_end_date(backend: Backend) -> None:
    clock = ManualClock(T0)
    s = make(backend, clock)
    once = await s.schedule(FUNC, at=datetime.fromtimestamp(T0 + 60, UTC))
    capped = await s.schedule(FUNC, interval=10, start_at=T0, max_runs=2)
    ended = await s.schedule(FUNC, interval=10, start_at=T0, end_at=T0 + 15)
    for t in (T0, T0 + 10, T0 + 20, T0 + 60, T0 + 70, T0 + 200):
        await s.tick(t)
    by: dict[str, int] = {}
    for task in await s.queue.list_tasks():
        by[task.metadata["schedule_id"]] = by.get(task.metadata["schedule_id"], 0) + 1
    assert by == {once.id: 1, capped.id: 2, ended.id: 2}
    for sid in (once.id, capped.id, ended.id):
        got = await s.get(sid)
        assert got is not None and got.finished


async def test_misfire_run_once_collapses_missed_runs(backend: Backend) -> None:
    clock = ManualClock(T0)
    s = make(backend, clock)
    sched = await s.schedule(FUNC, interval=10, start_at=T0)
    # No scheduler ran for 95 s: the missed runs fire once, then the regular rhythm.
    assert await fired_at(s, T0 + 95) == [T0]
    assert (await s.get(sched.id)).next_run_at == T0 + 100  # type: ignore[union-attr]
    assert await fired_at(s, T0 + 100) == [T0 + 100]


async def test_misfire_skip_drops_late_runs(backend: Backend) -> None:
    clock = ManualClock(T0)
    s = make(backend, clock, misfire_policy="skip", misfire_grace=5)
    sched = await s.schedule(FUNC, interval=10, start_at=T0)
    assert sched.misfire_policy.value == "skip"
    assert await fired_at(s, T0 + 95) == []  # 95 s late > 5 s grace
    assert await fired_at(s, T0 + 103) == [T0 + 100]  # 3 s late: within grace


async def test_pause_resume_events_and_policies(backend: Backend) -> None:
    assert backend.events is not None
    clock = ManualClock(T0)
    async with AsyncEventLogger(backend.events) as logger:
        s = make(backend, clock, logger)
        once = await s.schedule(FUNC, interval=10, start_at=T0, name="once")
        skip = await s.schedule(FUNC, interval=10, start_at=T0, misfire_policy="skip")
        assert await fired_at(s, T0) == [T0, T0]
        for sid in (once.id, skip.id):
            paused = await s.pause(sid)
            assert paused is not None and paused.state is ScheduleState.PAUSED
        assert await fired_at(s, T0 + 10, T0 + 35) == []  # paused: nothing fires
        clock.set(T0 + 35)
        assert (await s.resume(once.id)).next_run_at == T0 + 10  # type: ignore[union-attr]
        assert (await s.resume(skip.id)).next_run_at == T0 + 40  # type: ignore[union-attr]
        assert await fired_at(s, T0 + 35) == [T0 + 10]  # run_once: the missed run, once
        assert await fired_at(s, T0 + 40) == [T0 + 40, T0 + 40]
        assert await s.pause("missing") is None and await s.resume("missing") is None
        await logger.flush()
        events = await backend.events.query(types=[EventType.SCHEDULE_PAUSED])
        assert {e.task_id for e in events} == {once.id, skip.id}
        resumed = await backend.events.query(task_id=once.id)
        assert [e.type for e in resumed] == [EventType.SCHEDULE_PAUSED, EventType.SCHEDULE_RESUMED]
        assert resumed[0].metadata["name"] == "once"


async def test_crash_between_claim_and_enqueue_is_recovered_once(backend: Backend) -> None:
    assert backend.schedules is not None
    clock = ManualClock(T0)
    s = make(backend, clock, recovery_grace=2.0)
    sched = await s.schedule(FUNC, interval=60, start_at=T0)
    # A scheduler claims the run and dies before enqueueing it.
    [run] = await backend.schedules.claim_due(T0 + 0.1)
    assert run.due == T0
    assert (await s.tick(T0 + 1)).recovered == []  # within the grace: maybe in flight
    report = await s.tick(T0 + 2.5)
    assert [t.id for t in report.recovered] == [run_task_id(sched.id, T0)]
    other = make(backend, clock)  # another host's scheduler checks too: no duplicate
    assert (await other.tick(T0 + 3)).recovered == []
    assert (await s.tick(T0 + 4)).recovered == []
    assert await s.queue.tasks.count() == 1
    # Too old to recover (beyond the window) is left alone.
    late = make(backend, clock, recovery_window=10)
    [run2] = await backend.schedules.claim_due(T0 + 60)
    assert (await late.tick(T0 + 60 + 30)).recovered == []
    assert run2.due == T0 + 60


async def test_enqueue_is_idempotent_per_run(backend: Backend) -> None:
    clock = ManualClock(T0)
    s = make(backend, clock)
    sched = await s.schedule(FUNC, interval=10, start_at=T0, ttl=30, on_success=FUNC)
    a = run_task(sched, T0, at=T0 + 1)
    b = run_task(sched, T0, at=T0 + 2)
    assert a.id == b.id and a.on_success[0].id == b.on_success[0].id
    assert a.expires_at == T0 + 31 and b.expires_at == T0 + 32
    c = run_task(sched, T0 + 10, at=T0 + 11)
    assert c.id != a.id and c.on_success[0].id != a.on_success[0].id
    await s.queue.enqueue_many([a])
    await s.queue.enqueue_many([b])
    assert await s.queue.tasks.count() == 2  # the run and its follow-up, stored once
    assert str(uuid.UUID(a.id)) == a.id and uuid.UUID(a.id).version == 7
    assert run_task_id(sched.id, T0) < run_task_id(sched.id, T0 + 10)


async def test_schedule_options_are_validated(backend: Backend) -> None:
    s = make(backend, ManualClock(T0))
    with pytest.raises(ScheduleError, match="exactly one"):
        await s.schedule(FUNC, cron="* * * * *", interval=5)
    with pytest.raises(ScheduleError, match="depends_on"):
        await s.schedule(FUNC, interval=5, depends_on="x")
    with pytest.raises(ScheduleError, match="time zone"):
        await s.schedule(FUNC, cron="* * * * *", timezone="Mars/Olympus")
    with pytest.raises(ScheduleError, match="naive"):
        await s.schedule(FUNC, at=datetime(2030, 1, 1))
    assert await s.list() == []


async def test_many_schedulers_at_once_fire_each_run_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'many.db'}"
    clock = ManualClock(T0)
    backends = [open_storage(url) for _ in range(4)]
    for b in backends:
        await b.connect()
    try:
        scheds = [make(b, clock) for b in backends]
        for i in range(20):
            await scheds[0].schedule(FUNC, interval=1, start_at=T0, name=f"s{i}")
        for step in range(10):
            async with anyio.create_task_group() as tg:
                for s in scheds:
                    tg.start_soon(s.tick, T0 + step)
        tasks = await scheds[0].queue.list_tasks(limit=1000)
        assert len(tasks) == 200 == len({t.id for t in tasks})
        assert sum(s.stats.fired for s in scheds) == 200
    finally:
        for b in backends:
            await b.close()


async def test_run_sleeps_until_next_run_bounded_and_wakes_on_change(backend: Backend) -> None:
    clock = ManualClock(T0)
    s = make(backend, clock, max_sleep=1.0)
    await s.schedule(FUNC, interval=10, start_at=T0 + 0.25)
    async with anyio.create_task_group() as tg:
        tg.start_soon(s.run)
        with anyio.fail_after(5):
            await until(lambda: bool(clock.sleeps))
            assert clock.sleeps == [0.25]  # until the next run, not a fixed poll
            clock.set(T0 + 0.25)
            await until(lambda: s.stats.fired >= 1)
            await until(lambda: len(clock.sleeps) >= 2)
            assert clock.sleeps[1] == 1.0  # next run 10 s away: bounded by max_sleep
            n = s.stats.ticks
            await s.schedule(FUNC, interval=5, start_at=T0 + 0.5)
            s.wake()  # a local change cuts the sleep short
            await until(lambda: s.stats.ticks != n)
            s.stop()
    assert s.stats.fired == 1 and not s.running


async def test_run_survives_a_failing_pass(backend: Backend) -> None:
    clock = ManualClock(T0)
    s = make(backend, clock)
    calls = 0
    real = s.schedules.claim_due

    async def flaky(now: float, *, limit: int = 100) -> list[object]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise OSError("engine unreachable")
        return await real(now, limit=limit)  # type: ignore[return-value]

    s.schedules.claim_due = flaky  # type: ignore[method-assign]
    await s.schedule(FUNC, interval=10, start_at=T0)
    async with anyio.create_task_group() as tg:
        tg.start_soon(s.run)
        with anyio.fail_after(5):
            await until(lambda: bool(clock.sleeps))
            clock.set(T0 + 1)
            await until(lambda: s.stats.fired >= 1)
            s.stop()
    assert s.stats.errors == 1 and s.stats.fired == 1
