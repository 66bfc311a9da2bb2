"""A user's test suite written against the omniq.testing plugin's fixtures. Tests whose
name ends in _fails are meant to fail (the plugin's own tests check their messages)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import tasks

from omniq.models import TaskStatus, get_clock


def test_sign_up_enqueues_the_welcome_mail(omniq):
    tasks.sign_up(omniq, "ada@example.com")
    found = omniq.assert_enqueued_sync(
        tasks.send_email, ("ada@example.com",), {"subject": "welcome"}, queue="mail", count=1
    )
    assert found[0].status is TaskStatus.PENDING


def test_wrong_arguments_fails(omniq):
    tasks.sign_up(omniq, "ada@example.com")
    omniq.assert_enqueued_sync(tasks.send_email, ("bob@example.com",))


def test_wrong_count_fails(omniq):
    tasks.sign_up(omniq, "ada@example.com")
    omniq.assert_enqueued_sync("tasks:send_email", count=2)


def test_nothing_enqueued_fails(omniq):
    omniq.assert_enqueued_sync(tasks.send_email)


def test_drain_runs_what_is_due(omniq):
    tasks.sign_up(omniq, "ada@example.com")
    stats = omniq.drain_sync()
    assert stats.succeeded == 1
    (task,) = omniq.enqueued_sync(tasks.send_email)
    assert omniq.get_result_sync(task).value == "sent 'welcome' to ada@example.com"


def test_the_clock_decides_when_an_eta_is_due(omniq, omniq_clock):
    omniq.enqueue_sync(tasks.send_email, ("later@example.com",), delay=3600)
    assert omniq.drain_sync().claimed == 0
    omniq_clock.advance(3599)
    assert omniq.drain_sync().claimed == 0
    omniq_clock.advance(1)
    assert omniq.drain_sync().succeeded == 1


def test_setting_the_clock_to_a_date(omniq, omniq_clock):
    omniq.enqueue_sync(tasks.send_email, ("ny@example.com",), eta=datetime(2040, 1, 1, tzinfo=UTC))
    omniq_clock.set(datetime(2039, 12, 31, 23, 59, tzinfo=UTC))
    assert omniq.drain_sync().claimed == 0
    omniq_clock.set(datetime(2040, 1, 1, tzinfo=UTC))
    assert omniq.drain_sync().succeeded == 1


def test_schedules_fire_as_the_clock_moves(omniq, omniq_clock):
    omniq.schedule_sync(tasks.send_email, cron="0 9 * * *", args=("daily@example.com",))
    omniq_clock.set(datetime(2030, 5, 1, 8, 0, tzinfo=UTC))
    omniq.drain_sync()
    before = len(omniq.enqueued_sync(tasks.send_email))
    omniq_clock.set(datetime(2030, 5, 1, 9, 0, tzinfo=UTC))
    omniq.drain_sync()
    assert len(omniq.enqueued_sync(tasks.send_email, status="success")) == before + 1


def test_inline_runs_at_enqueue(inline_omniq):
    task = inline_omniq.enqueue_sync(tasks.send_email, ("now@example.com",))
    assert task.status is TaskStatus.SUCCESS
    assert inline_omniq.get_result_sync(task).value == "sent 'hello' to now@example.com"


def test_inline_result_that_cannot_travel_fails(inline_omniq):
    inline_omniq.enqueue_sync(tasks.open_handle, max_retries=0)


@pytest.mark.anyio
async def test_async_flavour(async_omniq, omniq_clock):
    await async_omniq.enqueue(tasks.send_email, ("async@example.com",), delay=60)
    await async_omniq.assert_enqueued(tasks.send_email, ("async@example.com",))
    omniq_clock.advance(60)
    assert (await async_omniq.drain()).succeeded == 1


def test_each_test_gets_a_fresh_queue(omniq):
    assert omniq.enqueued_sync() == []


def test_the_clock_is_put_back_after_each_test():
    assert get_clock() is None
