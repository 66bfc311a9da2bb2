"""The sync bridge: blocking calls into a helper-thread loop and into a running loop."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import warnings

import anyio.to_thread
import pytest

from omniq.events.bridge import (
    SyncInAsyncWarning,
    ThreadPortal,
    loop_factory,
    serve_portal,
    wait_interruptibly,
)
from omniq.models import ConfigError, EventLoopError


class Boom(Exception):
    pass


async def _thread_id() -> int:
    return threading.get_ident()


async def _boom() -> None:
    raise Boom("from the loop")


def test_thread_portal_runs_on_its_own_loop_and_keeps_exception_types() -> None:
    portal = ThreadPortal(loop_factory("asyncio"))
    try:
        assert not portal.started
        assert portal.call(_thread_id) != threading.get_ident()
        assert portal.started
        with pytest.raises(Boom, match="from the loop"):
            portal.call(_boom)
    finally:
        portal.close()
    assert not portal.started


def test_call_from_the_portals_own_loop_thread_refuses_instead_of_deadlocking() -> None:
    portal = ThreadPortal()
    try:

        async def nested() -> None:
            portal.call(_thread_id)

        with pytest.raises(EventLoopError, match="deadlock"):
            portal.call(nested)
    finally:
        portal.close()


def test_warns_only_when_asked_and_called_from_a_running_loop() -> None:
    quiet, loud = ThreadPortal(), ThreadPortal(warn=True)
    try:

        async def app() -> None:
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                quiet.call(_thread_id)
            with pytest.warns(SyncInAsyncWarning):
                loud.call(_thread_id)

        asyncio.run(app())
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            loud.call(_thread_id)  # no running loop here: no warning
    finally:
        quiet.close()
        loud.close()


def test_close_with_cancel_remaining_cancels_calls_still_running() -> None:
    portal = ThreadPortal()
    started = threading.Event()

    async def forever() -> None:
        started.set()
        await asyncio.Event().wait()

    future = portal.portal.start_task_soon(forever)
    assert started.wait(10)
    portal.close(cancel_remaining=True)
    assert future.cancelled()


@pytest.mark.anyio
async def test_serve_portal_lets_threads_and_other_loops_call_into_the_running_loop() -> None:
    home = threading.get_ident()
    async with serve_portal() as portal:
        assert portal.loop is asyncio.get_running_loop()
        assert await anyio.to_thread.run_sync(portal.call, _thread_id) == home

        def other_loop() -> int:
            return asyncio.run(portal.call_async(_thread_id))

        assert await anyio.to_thread.run_sync(other_loop) == home
        with pytest.raises(EventLoopError):
            portal.call(_thread_id)


def test_wait_interruptibly_returns_the_result_and_honours_a_timeout() -> None:
    future: concurrent.futures.Future[int] = concurrent.futures.Future()
    threading.Timer(0.5, future.set_result, (7,)).start()
    assert wait_interruptibly(future) == 7  # spans more than one 0.2 s wake-up
    pending: concurrent.futures.Future[int] = concurrent.futures.Future()
    with pytest.raises(TimeoutError):
        wait_interruptibly(pending, 0.05)


def test_loop_factory_validates_the_setting() -> None:
    assert loop_factory("asyncio") is asyncio.new_event_loop
    with pytest.raises(ConfigError, match="one of auto, asyncio, uvloop"):
        loop_factory("trio")
