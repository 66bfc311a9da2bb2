"""Schedule arithmetic: cron (time zones, DST, optional seconds), interval, one-shot,
pause/resume and misfire policies — with explicit instants, never the wall clock."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from croniter import croniter
from hypothesis import given, settings
from hypothesis import strategies as st

from omniq.models import (
    MisfirePolicy,
    Schedule,
    ScheduleError,
    ScheduleKind,
    ScheduleState,
    Task,
    cron_next,
)

T = Task(func="app:job")
BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


def ts(*args: int, tz: ZoneInfo = BERLIN) -> float:
    return datetime(*args, tzinfo=tz).timestamp()  # type: ignore[misc]


def test_cron_keeps_local_wall_clock_across_spring_forward() -> None:
    # 2026-03-29: Berlin jumps from 02:00 CET to 03:00 CEST.
    before = ts(2026, 3, 28, 8, 0)
    first = cron_next("0 9 * * *", before, "Europe/Berlin")
    second = cron_next("0 9 * * *", first, "Europe/Berlin")
    assert datetime.fromtimestamp(first, BERLIN).hour == 9
    assert datetime.fromtimestamp(second, BERLIN).hour == 9
    assert second - first == 23 * 3600  # the day with the jump is one hour short


def test_cron_in_fall_back_hour() -> None:
    # 2026-11-01 New York: 01:30 happens twice; the run is taken once.
    start = ts(2026, 10, 31, 12, 0, tz=NEW_YORK)
    runs = []
    t = start
    for _ in range(3):
        t = cron_next("30 1 * * *", t, "America/New_York")
        runs.append(t)
    days = [datetime.fromtimestamp(r, NEW_YORK).date().day for r in runs]
    assert days == [1, 2, 3]
    assert (
        croniter("30 1 * * *", datetime(2026, 10, 31, 12, tzinfo=NEW_YORK)).get_next(datetime).fold
        == 0
    )  # (croniter alone would fire again at 01:30 EST)


def test_spring_forward_gap_runs_right_after_the_jump() -> None:
    nxt = cron_next("30 2 * * *", ts(2026, 3, 28, 12, 0), "Europe/Berlin")
    assert datetime.fromtimestamp(nxt, BERLIN) == datetime(2026, 3, 29, 3, 0, tzinfo=BERLIN)


def test_wildcard_hour_keeps_running_through_the_repeated_hour() -> None:
    t = ts(2026, 11, 1, 0, 50, tz=NEW_YORK)
    runs = []
    for _ in range(7):
        t = cron_next("*/20 * * * *", t, "America/New_York")
        runs.append(t)
    assert [b - a for a, b in itertools.pairwise(runs)] == [1200.0] * 6


def test_six_fields_mean_leading_seconds() -> None:
    base = datetime(2026, 1, 1, 0, 0, 0, tzinfo=UTC).timestamp()
    nxt = cron_next("*/15 * * * * *", base, "UTC")
    assert nxt - base == 15


@settings(max_examples=200, deadline=None)
@given(
    start=st.datetimes(
        min_value=datetime(2020, 1, 1),
        max_value=datetime(2035, 12, 31),
        timezones=st.sampled_from(
            [
                ZoneInfo(z)
                for z in (
                    "Europe/Berlin",
                    "America/New_York",
                    "Australia/Sydney",
                    "Asia/Kolkata",
                    "UTC",
                )
            ]
        ),
    ),
    expr=st.sampled_from(
        [
            "0 9 * * *",
            "30 2 * * *",
            "*/7 * * * *",
            "0 0 1 * *",
            "15 3 * * 0",
            "0 */2 * * 1-5",
            "0 1-3 * * *",
        ]
    ),
)
def test_cron_next_agrees_with_croniter(start: datetime, expr: str) -> None:
    tzname = str(start.tzinfo)
    ours = cron_next(expr, start.timestamp(), tzname)
    local = datetime.fromtimestamp(start.timestamp(), ZoneInfo(tzname))
    it = croniter(expr, local)
    theirs_dt = it.get_next(datetime)
    if theirs_dt.fold == 1 and expr.split()[1] != "*":
        # a fixed-hour job in the repeated fall-back hour: ours runs once, croniter twice
        theirs_dt = it.get_next(datetime)
    assert ours == theirs_dt.timestamp()
    assert ours > start.timestamp()


def test_interval_anchors_on_start_and_skips_ahead() -> None:
    s = Schedule.create(T, interval=10, start_at=1000.0, created_at=500.0)
    assert s.kind is ScheduleKind.INTERVAL and s.next_run_at == 1000.0
    assert s.next_after(1000.0) == 1010.0
    assert s.next_after(1034.9) == 1040.0
    assert s.next_after(999.0) == 1000.0


def test_one_shot_fires_once_then_finishes() -> None:
    s = Schedule.create(T, at=2000.0, created_at=100.0)
    assert s.next_run_at == 2000.0 and not s.is_due(1999.0)
    s2, fire = s.advance(2000.5)
    assert fire and s2.finished and s2.runs == 1 and s2.last_run_at == 2000.0
    s3, fire = s2.advance(5000.0)
    assert not fire and s3 is s2


def test_advance_consumes_one_run_and_collapses_misses() -> None:
    s = Schedule.create(T, interval=1, start_at=0.0, created_at=0.0)
    not_yet, fire = s.advance(-1.0)
    assert not fire and not_yet is s
    s, fire = s.advance(0.0)
    assert fire and s.next_run_at == 1.0
    # scheduler was down for 10 s: one run, next on the grid after now
    s, fire = s.advance(10.5)
    assert fire and s.runs == 2 and s.next_run_at == 11.0


def test_skip_policy_drops_late_runs_beyond_grace() -> None:
    s = Schedule.create(
        T, interval=60, start_at=0.0, created_at=0.0, misfire_policy="skip", misfire_grace=5
    )
    late, fire = s.advance(30.0)
    assert not fire and late.runs == 0 and late.next_run_at == 60.0
    on_time, fire = late.advance(62.0)
    assert fire and on_time.runs == 1


def test_max_runs_and_end_at_finish_the_schedule() -> None:
    s = Schedule.create(T, interval=1, start_at=0.0, created_at=0.0, max_runs=2)
    s, _ = s.advance(0.0)
    s, fire = s.advance(1.0)
    assert fire and s.finished and s.runs == 2
    e = Schedule.create(T, interval=1, start_at=0.0, created_at=0.0, end_at=1.5)
    e, _ = e.advance(0.0)
    e, _ = e.advance(1.0)
    assert e.finished


def test_pause_and_resume() -> None:
    s = Schedule.create(T, interval=10, start_at=0.0, created_at=0.0)
    p = s.paused()
    assert p.state is ScheduleState.PAUSED and not p.is_due(100.0)
    r = p.resumed(35.0)  # run_once: the missed run fires once right away
    assert r.state is ScheduleState.ACTIVE and r.is_due(35.0)
    skip = (
        Schedule.create(
            T, interval=10, start_at=0.0, created_at=0.0, misfire_policy=MisfirePolicy.SKIP
        )
        .paused()
        .resumed(35.0)
    )
    assert skip.next_run_at == 40.0


def test_task_for_run_is_a_fresh_task_from_the_template() -> None:
    s = Schedule.create(T, interval=5, start_at=0.0, created_at=0.0)
    a, b = s.task_for_run(0.0), s.task_for_run(5.0)
    assert a.id != b.id != T.id and a.func == T.func
    assert a.metadata == {"schedule_id": s.id, "scheduled_for": 0.0}


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({}, "exactly one"),
        ({"cron": "* * *"}, "invalid cron"),
        ({"cron": "61 * * * *"}, "invalid cron"),
        ({"interval": 0}, "positive"),
        ({"interval": float("nan")}, "positive"),
        ({"interval": 5, "cron": "* * * * *"}, "exactly one"),
        ({"cron": "* * * * *", "timezone": "Mars/Olympus"}, "time zone"),
        ({"interval": 5, "max_runs": 0}, "max_runs"),
        ({"interval": 5, "misfire_policy": "sometimes"}, "misfire_policy"),
    ],
)
def test_bad_definitions_raise_schedule_error(kwargs: dict[str, object], fragment: str) -> None:
    with pytest.raises(ScheduleError, match=fragment):
        Schedule.create(T, **kwargs)  # type: ignore[arg-type]


def test_cron_schedule_first_run() -> None:
    created = ts(2026, 6, 1, 8, 59, 59)
    s = Schedule.create(T, cron="0 9 * * *", timezone="Europe/Berlin", created_at=created)
    assert s.next_run_at == ts(2026, 6, 1, 9, 0)
    s2, fire = s.advance(s.next_run_at + timedelta(seconds=1).total_seconds())
    assert fire and s2.next_run_at == ts(2026, 6, 2, 9, 0)
