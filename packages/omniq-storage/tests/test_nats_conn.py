"""The NATS connection helpers that save event-loop turns (``_backends/nats/_conn``):
``write_now`` sends what nats-py buffered without waiting for its flusher task, and
``subscribe_direct`` hands each message to a plain function inside the client's read
loop. Both lean on nats-py internals (its write buffer, a subscription's ``future``
slot); these tests fail when a nats-py release changes them, where the backend itself
would only get slower."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from omniq.storage._backends.nats._backend import NatsBackend
from omniq.storage._backends.nats._conn import subscribe_direct, write_now

pytestmark = pytest.mark.anyio


async def test_write_now_sends_the_buffer_and_direct_subscriptions_get_it(
    nats_backend: NatsBackend,
) -> None:
    nc: Any = nats_backend.js.nc
    got: list[bytes] = []
    arrived = asyncio.get_running_loop().create_future()

    def on_msg(msg: Any) -> None:
        got.append(msg.data)
        if len(got) == 2 and not arrived.done():
            arrived.set_result(None)

    inbox = nc.new_inbox()
    sub = await subscribe_direct(nc, inbox, on_msg)
    try:
        await nc.flush()  # the subscription is registered on the server
        await nc.publish(inbox, b"one")
        await nc.publish(inbox, b"two")
        assert nc._pending, "nats-py no longer buffers publishes until its flusher runs"
        write_now(nc)
        assert not nc._pending and nc._pending_data_size == 0
        await asyncio.wait_for(arrived, 5.0)
        assert got == [b"one", b"two"]  # in order, each through the function
    finally:
        await sub.unsubscribe()


async def test_a_failing_direct_handler_does_not_stop_the_connection(
    nats_backend: NatsBackend,
) -> None:
    nc: Any = nats_backend.js.nc
    seen = asyncio.get_running_loop().create_future()

    def broken(_: Any) -> None:
        raise RuntimeError("handler bug")

    def fine(msg: Any) -> None:
        if not seen.done():
            seen.set_result(msg.data)

    bad, good = nc.new_inbox(), nc.new_inbox()
    subs = [await subscribe_direct(nc, bad, broken), await subscribe_direct(nc, good, fine)]
    try:
        await nc.flush()
        await nc.publish(bad, b"x")
        await nc.publish(good, b"y")
        write_now(nc)
        assert await asyncio.wait_for(seen, 5.0) == b"y"
        assert await nats_backend.js.kv_put(nats_backend.keys_bucket, "alive", b"1") is not None
    finally:
        for s in subs:
            await s.unsubscribe()
