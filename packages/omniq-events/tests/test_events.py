"""Every event type: builders, metadata, and round trips through the real stores."""

from __future__ import annotations

from pathlib import Path

import pytest

from omniq.config import Settings
from omniq.events import AsyncEventLogger, EventLogger, progress_event
from omniq.models import (
    EventType,
    Progress,
    Schedule,
    ScheduleKind,
    Task,
    TaskEvent,
    TaskResult,
    TaskStatus,
    now,
)
from omniq.storage import EventStorage

pytestmark = pytest.mark.anyio


async def test_every_type_round_trips_as_plain_data(store: EventStorage) -> None:
    task = Task(func="app:work", queue="q", expires_at=123.0, attempt=2)
    sched = Schedule(task=task, kind=ScheduleKind.INTERVAL, interval=60.0, name="tick")
    result = TaskResult(
        task_id=task.id,
        status=TaskStatus.SUCCESS,
        attempts=2,
        started_at=10.0,
        finished_at=10.5,
        worker_id="w9",
        queue="q",
    )
    async with AsyncEventLogger(store) as log:
        log.enqueued(task)
        log.executing(task, "w1")
        log.complete(result)
        log.error(task, KeyError("k"), "w1", duration=0.5)
        log.retry(task, "flaky", eta=99.0, delay=3.0, worker_id="w1")
        log.cancelled(task, reason="dependency failed", dependency="d1")
        log.expired(task)
        log.schedule_paused(sched)
        log.schedule_resumed(sched.id, next_run_at=200.0)
        log.queue_paused("q")
        log.queue_resumed("q", note="incident over")
        log.log(progress_event(task, Progress(done=3, total=10, message="m"), worker_id="w1"))
        log.log(
            TaskEvent(
                task_id=task.id,
                type=EventType.LIMITED,
                worker_id="w1",
                queue="q",
                metadata={"limit_key": "app:work"},
            )
        )
    got = {e.type: e for e in await store.query()}
    assert set(got) == set(EventType)
    progress = got[EventType.PROGRESS]
    assert progress.worker_id == "w1"
    assert (progress.metadata["done"], progress.metadata["total"]) == (3, 10)
    assert progress.metadata["message"] == "m"
    assert got[EventType.LIMITED].metadata == {"limit_key": "app:work"}
    assert got[EventType.EXECUTING].worker_id == "w1"
    assert got[EventType.EXECUTING].metadata == {"func": "app:work", "attempt": 2}
    assert got[EventType.COMPLETE].metadata == {"attempt": 2, "duration": 0.5}
    assert got[EventType.COMPLETE].worker_id == "w9"
    err = got[EventType.ERROR].metadata
    assert (err["error_type"], err["error_message"], err["duration"]) == ("KeyError", "'k'", 0.5)
    assert got[EventType.RETRY].metadata["error_message"] == "flaky"
    assert got[EventType.RETRY].metadata["eta"] == 99.0
    assert got[EventType.CANCELLED].metadata["dependency"] == "d1"
    assert got[EventType.EXPIRED].metadata["expires_at"] == 123.0
    paused = got[EventType.SCHEDULE_PAUSED]
    assert paused.task_id == sched.id and paused.metadata["schedule_id"] == sched.id
    assert paused.metadata["name"] == "tick" and paused.metadata["kind"] == "interval"
    assert got[EventType.SCHEDULE_RESUMED].metadata["next_run_at"] == 200.0
    assert got[EventType.QUEUE_PAUSED].task_id == "q"
    assert got[EventType.QUEUE_RESUMED].metadata == {"queue": "q", "note": "incident over"}
    assert all(e.queue == "q" for t, e in got.items() if t is not EventType.SCHEDULE_RESUMED)


async def test_from_settings(tmp_path: Path) -> None:
    off = AsyncEventLogger.from_settings(Settings(event_storage_type=""))
    assert not off.enabled
    s = Settings(
        event_storage_type="sqlite",
        base_dir=str(tmp_path),
        event_buffer_size=123,
        event_retention_count=7,
    )
    async with AsyncEventLogger.from_settings(s) as log:
        assert log.enabled and log.retention_count == 7
        log.enqueued("t")
        await log.flush()
        assert log.stats.written == 1
    # the embedded SQLite default, shared with the task queue (omniq.storage.store_urls)
    assert (tmp_path / "omniq.db").exists()
    assert not (tmp_path / "events.db").exists()


def test_sync_from_settings_disabled() -> None:
    with EventLogger.from_settings(Settings()) as log:
        assert not log.enabled
        log.expired("t")
    assert log.stats.logged == 0


async def test_timestamps_are_set_at_log_time(store: EventStorage) -> None:
    before = now()
    async with AsyncEventLogger(store) as log:
        log.enqueued("t")
    [e] = await store.query()
    assert before <= e.timestamp <= now()
