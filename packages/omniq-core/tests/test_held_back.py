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


async def test_the_store_tells_how_long_a_rate_needs() -> None:
    hb = HeldBack()
    hb.claimed(0, True, wait=0.3)
    assert hb.pause == pytest.approx(0.3)
    hb.claimed(0, True, wait=60.0)  # bounded
    assert hb.pause == HeldBack.MAX_WAIT
    hb.claimed(1, True, wait=0.3)  # something came: claim again at once
    assert hb.pause == 0.0


async def test_a_slot_freed_by_another_worker_ends_the_pause() -> None:
    hb = HeldBack()
    told = anyio.Event()

    async def remote(timeout: float) -> bool:  # noqa: ASYNC109 - the store's wait
        await told.wait()
        return True

    hb.remote = remote
    for _ in range(10):
        hb.claimed(0, True)
    assert hb.pause == HeldBack.MAX_WOKEN  # a longer pause: the store wakes it
    with anyio.fail_after(5.0):
        async with anyio.create_task_group() as tg:
            tg.start_soon(hb.wait, 30.0)
            await anyio.lowlevel.checkpoint()
            told.set()
