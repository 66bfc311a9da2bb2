"""Fault tests for the NATS JetStream backend.

- restart: in test_server_faults.py, shared with Redis and PostgreSQL (a private
  ``nats-server -js`` with its own port and store directory);
- dropped connection: the client talks to the server through a TCP proxy that cuts every
  connection (as a server-side kill or a network drop would); operations recover (at
  worst one BackendUnavailableError) and wake-ups still work;
- exactly-once: 4 processes drain 5,000 tasks; each task is completed exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import TypeVar

import anyio
import pytest

from omniq.models import BackendUnavailableError, now
from omniq.storage import Backend, Completion, open_storage
from omniq.storage._backends.nats._backend import NatsBackend
from omniq.storage.testing.helpers import poll_until

from ._servers import PrivateNats, drop, fault_task, retrying

pytestmark = pytest.mark.anyio
T = TypeVar("T")
SHARED = "nats://127.0.0.1:4222"


def _ns_url(base: str) -> str:
    return f"{base}?namespace=OQFAULT{uuid.uuid4().hex[:12].upper()}"


@pytest.fixture
def private_nats() -> Iterator[PrivateNats]:
    server = PrivateNats()
    try:
        server.start()
        yield server
    finally:
        server.cleanup()


async def test_connect_waits_for_jetstream_within_its_deadline(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A worker opened while JetStream cannot answer (a cluster electing a leader after
    losing a node) waits for it within the connect deadline instead of failing, and
    gives up with a BackendUnavailableError naming the cause once the deadline passes."""
    caplog.set_level(logging.INFO, "omniq.storage.nats")
    server = PrivateNats()
    server.jetstream = False
    try:
        server.start()
        url = _ns_url(server.url)
        with pytest.raises(BackendUnavailableError, match="JetStream did not answer"):
            await NatsBackend(url, connect_deadline=1).connect()

        backend = NatsBackend(url, connect_deadline=30)
        connected = anyio.Event()

        async def connect() -> None:
            await backend.connect()
            connected.set()

        async def retries() -> int:
            return sum("not answering yet" in r.getMessage() for r in caplog.records)

        async with anyio.create_task_group() as tg:
            caplog.clear()
            tg.start_soon(connect)
            await poll_until(retries, lambda n: n >= 3, deadline=20.0)
            assert not connected.is_set()
            server.jetstream = True
            server.restart()  # same port and store: the client reconnects to it
            with anyio.fail_after(30):
                await connected.wait()
        try:
            q = backend.tasks
            await q.enqueue([fault_task()])
            [c] = await q.claim(["default"], "w", lease=30)
            rep = await q.complete([Completion(c.task.id, c.token)])
            assert rep.done == [c.task.id]
        finally:
            await backend.close()
    finally:
        server.cleanup()


class Proxy:
    """A TCP proxy to the shared server whose connections can all be cut at once."""

    def __init__(self, target_port: int) -> None:
        self.target = target_port
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_r, up_w = await asyncio.open_connection("127.0.0.1", self.target)
        except OSError:
            writer.close()
            return
        self._writers |= {writer, up_w}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(Exception):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            with contextlib.suppress(Exception):
                dst.close()

        await asyncio.gather(pipe(reader, up_w), pipe(up_r, writer))
        self._writers -= {writer, up_w}

    def cut(self) -> int:
        """Abort every proxied connection (both sides see a reset)."""
        n = 0
        for w in list(self._writers):
            with contextlib.suppress(Exception):
                w.transport.abort()
                n += 1
        return n

    async def close(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


@pytest.fixture
async def proxied() -> AsyncIterator[tuple[Backend, Proxy]]:
    proxy = Proxy(4222)
    await proxy.start()
    url = _ns_url(f"nats://127.0.0.1:{proxy.port}")
    try:
        async with open_storage(url) as backend:
            try:
                yield backend, proxy
            finally:
                await retrying(lambda: drop(backend))
    finally:
        await proxy.close()


async def test_dropped_connection_recovers(proxied: tuple[Backend, Proxy]) -> None:
    backend, proxy = proxied
    q = backend.tasks
    assert q is not None
    await q.enqueue([fault_task()])
    assert proxy.cut() >= 1

    failures = 0

    async def attempt(fn: Callable[[], Awaitable[T]]) -> T:
        nonlocal failures
        try:
            return await fn()
        except BackendUnavailableError:
            failures += 1
            return await retrying(fn)

    [c] = await attempt(lambda: q.claim(["default"], "w", lease=30))
    rep = await attempt(lambda: q.complete([Completion(c.task.id, c.token)]))
    assert rep.done == [c.task.id]
    assert failures <= 1

    # Subscriptions are restored after the reconnect: a waiting worker is woken.
    url = backend.url.replace(f":{proxy.port}", ":4222")
    async with open_storage(url) as other:
        assert other.tasks is not None
        proxy.cut()
        woke: list[bool] = []

        async def waiter() -> None:
            woke.append(await attempt(lambda: q.wait_for_work(["default"], 10)))

        async with anyio.create_task_group() as tg:
            tg.start_soon(waiter)
            start = now()
            await anyio.sleep(0.5)  # let the client notice the cut and reconnect
            await other.tasks.enqueue([fault_task()])
        assert woke == [True] and now() - start < 5
