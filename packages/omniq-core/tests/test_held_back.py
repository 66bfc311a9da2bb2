"""The pause of a worker whose ready work is held back by flow limits ends as soon as
the worker frees a concurrency slot itself, and not for tasks without a cap."""

from __future__ import annotations

import time

import anyio
import anyio.lowlevel
import pytest

from omniq.models import Task
from omniq.queue._limited import HeldBack

pytestmark = pytest.mark.anyio


def _task(**kw: object) -> Task:
    return Task(id="t1", func="m:f", queue="default", **kw)  # type: ignore[arg-type]


async def test_a_freed_slot_ends_the_pause() -> None:
    hb = HeldBack()
    hb.claimed(0, True)
    assert hb.pause > 0
    t0 = time.monotonic()
    async with anyio.create_task_group() as tg:
        tg.start_soon(hb.wait, 30.0)
        await anyio.lowlevel.checkpoint()  # let the wait begin
        hb.freed([_task(max_concurrency=2)])
    assert time.monotonic() - t0 < 5.0


async def test_a_slot_freed_before_the_wait_is_not_lost() -> None:
    hb = HeldBack()
    hb.claimed(0, True)
    hb.freed([_task(max_concurrency=2)])
    with anyio.fail_after(5.0):
        await hb.wait(30.0)


async def test_uncapped_tasks_do_not_end_the_pause() -> None:
    hb = HeldBack()
    hb.claimed(0, True)
    hb.freed([_task(rate_limit="5/s")])
    with anyio.move_on_after(0.05) as scope:
        await hb.wait(30.0)
    assert scope.cancelled_caught
