"""The clock seam: now() reads an installed clock; ManualClock moves only when told."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import pytest

from omniq.models import ManualClock, Task, get_clock, now, set_clock, skip_ahead, use_clock


def test_now_reads_the_installed_clock_and_the_wall_clock_without_one() -> None:
    assert get_clock() is None
    assert abs(now() - time.time()) < 5
    clock = ManualClock(1_000.0)
    with use_clock(clock):
        assert get_clock() is clock
        assert now() == 1_000.0
        clock.advance(timedelta(minutes=1))
        assert now() == 1_060.0
        clock.set(datetime(2030, 1, 1, tzinfo=UTC))
        assert now() == datetime(2030, 1, 1, tzinfo=UTC).timestamp()
        clock.set(datetime(2030, 1, 1))  # naive means UTC
        assert now() == datetime(2030, 1, 1, tzinfo=UTC).timestamp()
    assert get_clock() is None


def test_a_manual_clock_does_not_go_backwards_by_advance() -> None:
    with pytest.raises(ValueError):
        ManualClock(0.0).advance(-1)


def test_models_decide_by_the_installed_clock() -> None:
    clock = ManualClock(100.0)
    with use_clock(clock):
        task = Task(func="m:f", eta=150.0, expires_at=200.0, created_at=100.0)
        assert not task.is_due() and not task.is_expired()
        clock.advance(50)
        assert task.is_due() and not task.is_expired()
        clock.advance(50)
        assert task.is_expired()


def test_skip_ahead_advances_a_manual_clock_or_offsets_the_wall_clock() -> None:
    clock = ManualClock(0.0)
    with use_clock(clock):
        skip_ahead(30)
        assert clock.now() == 30.0
    previous = set_clock(None)
    try:
        skip_ahead(3600)
        assert now() - time.time() > 3500
    finally:
        set_clock(previous)


def test_manual_sleep_advances_instead_of_waiting() -> None:
    clock = ManualClock(0.0)
    asyncio.run(clock.sleep(86_400))  # omniq-models has no anyio: plain asyncio
    assert clock.now() == 86_400
