"""The wait/notify primitive every backend builds on (``omniq.storage._wake``)."""

from __future__ import annotations

import asyncio
import threading

import pytest

from omniq.storage._wake import Wake

pytestmark = pytest.mark.anyio


async def test_a_notification_between_check_and_wait_is_not_missed() -> None:
    wake = Wake()
    with wake.watch(["q"]) as w:
        wake.notify(["q"])  # arrives after the watch, before the wait
        assert w.fired
        assert await w.wait(5.0) is True


async def test_a_wait_that_times_out_stays_registered() -> None:
    wake = Wake()
    with wake.watch(["q"]) as w:
        assert await w.wait(0.01) is False
        assert not w.fired
        wake.notify(["q"])
        assert w.fired
        assert await w.wait(5.0) is True


async def test_other_keys_do_not_wake_and_keyless_waits_wake_on_any() -> None:
    wake = Wake()
    with wake.watch(["a"]) as a:
        version = wake.version
        keyless = asyncio.ensure_future(wake.wait(5.0, since=version))
        wake.notify(["b"])  # before or after it registers: ``since`` covers both
        assert await asyncio.wait_for(keyless, 5.0) is True
        assert not a.fired
        assert await a.wait(0.01) is False


async def test_since_an_older_version_is_fired_at_once() -> None:
    wake = Wake()
    version = wake.version
    wake.notify(["x"])
    assert await wake.wait(5.0, since=version) is True


async def test_a_notification_from_another_thread_wakes_the_waiter() -> None:
    wake = Wake()
    with wake.watch(["q"]) as w:
        waiting = asyncio.ensure_future(w.wait(10.0))
        threading.Thread(target=wake.notify, args=(["q"],)).start()
        assert await asyncio.wait_for(waiting, 5.0) is True


async def test_a_cancelled_wait_leaves_the_watch_usable() -> None:
    wake = Wake()
    with wake.watch(["q"]) as w:
        waiting = asyncio.ensure_future(w.wait(10.0))
        await asyncio.sleep(0)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        assert not w.fired
        wake.notify(["q"])
        assert await w.wait(5.0) is True


async def test_a_closed_watch_is_no_longer_woken() -> None:
    wake = Wake()
    with wake.watch(["q"]) as w:
        pass
    wake.notify(["q"])
    assert not w.fired
    assert wake._waiters == {}


async def test_an_unbounded_wait_returns_on_notify() -> None:
    wake = Wake()
    with wake.watch(["q"]) as w:
        waiting = asyncio.ensure_future(w.wait(None))
        await asyncio.sleep(0)
        assert not waiting.done()
        wake.notify(None)
        assert await asyncio.wait_for(waiting, 5.0) is True


async def test_a_wait_cancelled_as_its_timer_fires_stays_a_cancellation() -> None:
    """The caller's cancellation and the wait's own timer in one loop turn."""
    wake = Wake()
    with wake.watch(["q"]) as w:
        waiting = asyncio.ensure_future(w.wait(10.0))
        await asyncio.sleep(0)  # parked on its future
        fut = w._slot.fut
        waiting.cancel()  # cancels that future now; the wait resumes on the next turn
        w._expire(fut)  # what the wait's timer does when it fires in this same turn
        with pytest.raises(asyncio.CancelledError):
            await waiting
        assert not w.fired
        wake.notify(["q"])
        assert await w.wait(5.0) is True
