"""OmniQ's schedule operations (async and ``_sync``), background schedulers, the blocking
Scheduler and the scheduling commands, on a real SQLite store."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import pytest
from typer.testing import CliRunner

from omniq.core import OmniQ
from omniq.core._schedule_cli import make_app
from omniq.models import EventType, ScheduleError, ScheduleKind, ScheduleState, now
from omniq.queue import Scheduler

FUNC = "omniq_sched_tests:job"
WAIT = 10.0


async def until(cond: Callable[[], object], what: str) -> None:
    deadline = now() + WAIT
    while True:
        got = cond()
        if hasattr(got, "__await__"):
            got = await got  # type: ignore[misc]
        if got:
            return
        assert now() < deadline, f"timed out waiting for {what}"
        await anyio.sleep(0.01)


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'oq.db'}"


@pytest.mark.anyio
async def test_async_operations_and_events(url: str) -> None:
    async with OmniQ(url, event_storage=url) as oq:
        at = datetime.now(UTC) + timedelta(hours=1)
        one = await oq.schedule(FUNC, at=at, args=(1,), kwargs={"x": 2}, name="one", queue="q")
        cron = await oq.schedule(FUNC, cron="0 9 * * 1-5", timezone="Europe/Berlin", max_runs=3)
        assert one.kind is ScheduleKind.AT and one.next_run_at == pytest.approx(at.timestamp())
        assert one.task.queue == "q" and cron.timezone == "Europe/Berlin" and cron.max_runs == 3
        assert [s.id for s in await oq.list_schedules()] == sorted([one.id, cron.id])
        assert await oq.get_schedule(one.id) == one
        paused = await oq.pause_schedule(one)
        assert paused is not None and paused.state is ScheduleState.PAUSED
        assert [s.id for s in await oq.list_schedules(state="paused")] == [one.id]
        resumed = await oq.resume_schedule(one.id)
        assert resumed is not None and resumed.state is ScheduleState.ACTIVE
        assert await oq.pause_schedule("nope") is None
        types = [e.type for e in await oq.get_events(one.id)]
        assert types == [EventType.SCHEDULE_PAUSED, EventType.SCHEDULE_RESUMED]
        assert await oq.delete_schedule(one.id) is True
        assert await oq.delete_schedule(one.id) is False
        assert await oq.get_schedule(one.id) is None
        with pytest.raises(ScheduleError):
            await oq.schedule(FUNC)
        with pytest.raises(ScheduleError, match="eta"):
            await oq.schedule(FUNC, interval=5, eta=time.time())


@pytest.mark.anyio
async def test_background_scheduler_fires_and_stops_with_close(url: str) -> None:
    oq = OmniQ(url, event_storage=url)
    async with oq:
        s = await oq.schedule(FUNC, interval=0.1, max_runs=3)
        async with oq.scheduler() as handle:
            await until(lambda: oq.get_schedule(s.id), "the schedule")

            async def three() -> bool:
                got = await oq.get_schedule(s.id)
                return got is not None and got.runs == 3

            await until(three, "three runs")
        assert handle.stats is not None and handle.stats.fired == 3
        tasks = await oq.list_tasks()
        assert len(tasks) == 3 and {t.metadata["schedule_id"] for t in tasks} == {s.id}
        # A scheduler still running when the OmniQ closes is stopped by close().
        h2 = oq.scheduler()
        await h2.start()
    assert h2.scheduler is not None and not h2.scheduler.running


def test_sync_operations_and_background_scheduler(url: str) -> None:
    with OmniQ(url, event_storage=url) as oq:
        s = oq.schedule_sync(FUNC, interval=timedelta(milliseconds=100), max_runs=2)
        assert oq.get_schedule_sync(s.id) == s
        assert [x.id for x in oq.list_schedules_sync()] == [s.id]
        with oq.scheduler():
            deadline = time.monotonic() + WAIT
            while (got := oq.get_schedule_sync(s.id)) is not None and got.runs < 2:
                assert time.monotonic() < deadline
                time.sleep(0.01)
        assert len(oq.list_tasks_sync()) == 2
        assert oq.pause_schedule_sync(s.id) is not None
        assert oq.resume_schedule_sync(s.id) is not None
        assert oq.delete_schedule_sync(s.id) is True


def test_blocking_scheduler_class(url: str) -> None:
    with Scheduler(url, events_url=url) as sched:
        t0 = time.time()
        s = sched.schedule(FUNC, interval=60, start_at=t0 + 10)
        assert sched.tick(t0).fired == []
        assert [t.metadata["scheduled_for"] for t in sched.tick(t0 + 10).fired] == [t0 + 10]
        assert sched.pause(s.id) is not None and sched.tick(t0 + 70).fired == []
        assert sched.resume(s.id) is not None
        assert [x.state for x in sched.list()] == [ScheduleState.ACTIVE]
        assert sched.get(s.id) is not None and sched.delete(s.id)
    with OmniQ(url, event_storage=url) as oq:
        types = [e.type for e in oq.get_events_sync(s.id)]
        assert types == [EventType.SCHEDULE_PAUSED, EventType.SCHEDULE_RESUMED]


def test_schedule_commands(url: str) -> None:
    app = make_app()
    cli = CliRunner()
    add = ["schedule", "add", FUNC, "--cron", "*/5 * * * * *", "--arg", "1", "--arg", '"a"']
    r = cli.invoke(app, [*add, "--kwargs", '{"k": true}', "--name", "five", "--url", url])
    assert r.exit_code == 0, r.output
    sid = r.output.split()[0]
    r = cli.invoke(app, ["schedule", "add", FUNC, "--at", "2031-01-01T00:00:00", "-u", url])
    assert r.exit_code == 0, r.output
    r = cli.invoke(app, ["schedule", "list", "--url", url])
    assert r.exit_code == 0 and sid in r.output and "*/5 * * * * *" in r.output, r.output
    r = cli.invoke(app, ["schedule", "list", "--json", "--url", url])
    rows = [json.loads(line) for line in r.output.splitlines()]
    assert {row["name"] for row in rows if "name" in row} == {"five"} and len(rows) == 2
    assert cli.invoke(app, ["schedule", "pause", sid, "--url", url]).output.strip() == (
        f"{sid} paused"
    )
    assert "resumed" in cli.invoke(app, ["schedule", "resume", sid, "--url", url]).output
    assert "deleted" in cli.invoke(app, ["schedule", "rm", sid, "--url", url]).output
    r = cli.invoke(app, ["schedule", "rm", sid, "--url", url])
    assert r.exit_code == 1
    r = cli.invoke(app, ["schedule", "add", FUNC, "--cron", "nope", "--url", url])
    assert r.exit_code == 2 and "invalid cron" in r.output
