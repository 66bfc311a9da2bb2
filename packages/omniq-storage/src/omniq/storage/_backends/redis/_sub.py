"""The Redis backend's pub/sub subscriber: one raw connection per backend, parsed by
hiredis in the transport's ``data_received``.

Why not redis-py's ``PubSub``: every ``get_message`` goes through health checks, a
timeout scope, the connection's read path and a dict per message before our code sees
the bytes, and that is most of what an idle worker adds to enqueue -> start latency
(docs/performance.md has the measurements). Here a notification is handled in the same
callback that receives it. The connection is set up from the redis-py client's own
connection settings (host or unix path, TLS context, credentials, client name), so it
goes wherever the client goes.

The subscriber keeps itself alive: it PINGs after ``health_interval`` seconds of
silence, and on any loss it reconnects with backoff and calls ``on_reset`` once the
subscription is back (notifications sent meanwhile were lost, so everyone waiting must
look again).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, cast

import hiredis
from redis.asyncio.connection import SSLConnection, UnixDomainSocketConnection
from redis.credentials import UsernamePasswordCredentialProvider
from redis.exceptions import AuthenticationError
from redis.exceptions import ConnectionError as RedisConnectionError

from omniq.storage._outage import Outage, describe

from ._resp import pack_command

__all__ = ["RawProtocol", "Subscriber", "open_like"]

log = logging.getLogger("omniq.storage.redis")


class RawProtocol(asyncio.Protocol):
    """What ``open_like`` needs of a protocol: its transport and one command at a time."""

    transport: asyncio.Transport | None

    async def command(self, *args: str | bytes) -> Any:
        raise NotImplementedError


P = TypeVar("P", bound=RawProtocol)


class _Protocol(RawProtocol):
    """Messages go to ``on_message`` as they are parsed; any other reply answers the
    oldest command still waiting (AUTH, CLIENT SETNAME, SUBSCRIBE, PING)."""

    def __init__(self, on_message: Callable[[bytes], None]) -> None:
        self._on_message = on_message
        self._reader = hiredis.Reader()
        self._replies: deque[asyncio.Future[Any]] = deque()
        self.transport: asyncio.Transport | None = None
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.last_read = time.monotonic()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        self.last_read = time.monotonic()
        reader = self._reader
        reader.feed(data)
        try:
            while (reply := reader.gets()) is not False:
                if type(reply) is list and len(reply) == 3 and reply[0] == b"message":
                    try:
                        self._on_message(reply[2])
                    except Exception:  # pragma: no cover - a handler bug must not cut us off
                        log.exception("redis notification handler failed")
                elif self._replies:
                    fut = self._replies.popleft()
                    if not fut.done():
                        fut.set_result(reply)
        except hiredis.ProtocolError as exc:  # pragma: no cover - a broken stream
            log.warning("redis pub/sub stream unreadable, reconnecting: %s", describe(exc))
            if self.transport is not None:
                self.transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        while self._replies:
            fut = self._replies.popleft()
            if not fut.done():
                fut.set_exception(RedisConnectionError(f"pub/sub connection lost: {exc}"))
        if not self.closed.done():
            self.closed.set_result(None)

    async def command(self, *args: str | bytes) -> Any:
        if self.transport is None or self.transport.is_closing():
            raise RedisConnectionError("pub/sub connection is closed")
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._replies.append(fut)
        self.transport.write(pack_command(*args))
        reply = await fut
        if isinstance(reply, hiredis.ReplyError):
            raise _error(args[0], reply)
        return reply


def _error(cmd: str | bytes, reply: Exception) -> Exception:
    text = str(reply)
    if cmd == "AUTH" or text.startswith(("WRONGPASS", "NOAUTH", "NOPERM")):
        return AuthenticationError(f"redis pub/sub {cmd!r}: {text}")
    return RedisConnectionError(f"redis pub/sub {cmd!r}: {text}")


async def open_like(
    client: Any, factory: Callable[[], P], *, select_db: bool = False
) -> tuple[P, Callable[..., Awaitable[Any]]]:
    """A raw connection made like ``client``'s (host or unix path, TLS, the route of a
    Sentinel or Cluster URL), authenticated and named as the client's are; with
    ``select_db`` its database selected too. Returns the protocol and ``ask``, which
    runs a further setup command with the connect timeout."""
    conn = client.connection_pool.make_connection()  # settings only, no I/O
    loop = asyncio.get_running_loop()
    timeout = conn.socket_connect_timeout or conn.socket_timeout or 10.0

    async def open_() -> P:
        if isinstance(conn, UnixDomainSocketConnection):
            _, proto = await loop.create_unix_connection(factory, conn.path)
        else:
            ssl = conn.ssl_context.get() if isinstance(conn, SSLConnection) else None
            _, proto = await loop.create_connection(factory, conn.host, conn.port, ssl=ssl)
        return proto

    async def open_at(address: tuple[str, int]) -> P:
        conn.host, conn.port = address
        return await asyncio.wait_for(open_(), timeout)

    router = getattr(conn, "router", None)  # a Sentinel or Cluster route (``_route``)
    if router is not None:
        proto = await router.connect(open_at)
    else:
        proto = await asyncio.wait_for(open_(), timeout)

    async def ask(*args: str | bytes) -> Any:
        return await asyncio.wait_for(proto.command(*args), timeout)

    try:
        provider = conn.credential_provider
        if provider is None and (conn.username or conn.password):
            provider = UsernamePasswordCredentialProvider(conn.username, conn.password)
        if provider is not None:
            get_async = getattr(provider, "get_credentials_async", None)  # redis-py >= 5.1
            creds = await get_async() if get_async else provider.get_credentials()
            await ask("AUTH", *creds)
        if conn.client_name:
            await ask("CLIENT", "SETNAME", conn.client_name)
        if select_db and int(conn.db or 0):
            await ask("SELECT", str(int(conn.db)))
    except BaseException:
        if proto.transport is not None:
            proto.transport.abort()
        raise
    return proto, ask


class Subscriber:
    """A subscriber to ``channels`` on a connection made like ``client``'s.

    ``on_message(data)`` runs in the event loop's read callback for every message;
    ``on_reset()`` runs after a lost connection is subscribed again. Failed reconnects
    and the reconnect that succeeds are reported to ``outage`` (the backend's tracker).
    """

    def __init__(
        self,
        client: Any,
        channels: list[str],
        on_message: Callable[[bytes], None],
        on_reset: Callable[[], None],
        *,
        health_interval: float = 10.0,
        outage: Outage | None = None,
    ) -> None:
        self._client = client
        self._channels = channels
        self._on_message = on_message
        self._on_reset = on_reset
        self._health = health_interval
        self._outage = outage
        self._proto: _Protocol | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Connect and subscribe (returns once Redis confirmed the subscription), then
        keep the subscription alive in the background."""
        self._proto = await self._connect()
        self._task = asyncio.create_task(self._keep(), name="omniq-redis-subscriber")

    async def _connect(self) -> _Protocol:
        proto, ask = await open_like(self._client, lambda: _Protocol(self._on_message))
        try:
            for channel in self._channels:  # one confirmation each
                await ask("SUBSCRIBE", channel)
        except BaseException:
            if proto.transport is not None:
                proto.transport.abort()
            raise
        return proto

    async def _keep(self) -> None:
        backoff = 0.05
        while True:
            proto = self._proto
            assert proto is not None
            await self._watch(proto)
            self._on_reset()  # wake waiters now too: they fall back to probing
            while True:
                await asyncio.sleep(backoff)
                try:
                    self._proto = await self._connect()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    backoff = min(backoff * 2, 1.0)
                    if self._outage is not None:
                        self._outage.failed(exc)
                    else:
                        log.debug("redis pub/sub reconnect failed: %s", describe(exc))
                    continue
                backoff = 0.05
                if self._outage is not None:
                    self._outage.ok()
                self._on_reset()
                break

    async def _watch(self, proto: _Protocol) -> None:
        """Return when ``proto``'s connection is gone; PING it after ``health_interval``
        of silence and drop it when the PING goes unanswered."""
        while not proto.closed.done():
            quiet = time.monotonic() - proto.last_read
            if quiet < self._health:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(proto.closed), self._health - quiet)
                continue
            try:
                await asyncio.wait_for(proto.command("PING"), self._health)
            except asyncio.CancelledError:
                raise
            except Exception:
                if proto.transport is not None:
                    proto.transport.abort()
                await proto.closed

    def reconnect(self) -> None:
        """Drop the connection (its server no longer serves us); ``_keep`` opens a new
        one, to wherever the connection settings lead now."""
        if self._proto is not None and self._proto.transport is not None:
            self._proto.transport.abort()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None
        if self._proto is not None and self._proto.transport is not None:
            self._proto.transport.close()
        self._proto = None
