"""A short path for script calls: a connection the backend holds, with commands packed
and written directly and replies parsed by hiredis in the transport's ``data_received``.

Why: redis-py's per-command machinery (``execute_command``: pool checkout with its
readiness probe, retry wrapper, timeout scopes, release) costs more than the rest of an
``enqueue`` before the bytes leave (docs/performance.md has the measurements). Calls are
pipelined: each writes its command and waits for its own reply (replies come in order),
so concurrent callers share the connection instead of checking out pool connections.

Failure handling keeps the pool path's guarantees: a call whose connection fails before
its reply came is sent again through the pool (which retries, as for every other
command), a script unknown to the server (``NOSCRIPT`` after a restart or ``SCRIPT
FLUSH``) is loaded by the pool path, a call waiting longer than the socket timeout drops
the connection (its calls go to the pool, with its timeouts), and a call cancelled while
waiting leaves its reply to be read and dropped in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Sequence
from typing import Any, cast

import hiredis
from redis._parsers.base import BaseParser
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError

from omniq.models import StorageError

from ._resp import pack_command, pack_evalsha
from ._sub import RawProtocol, open_like

__all__ = ["Lane", "LaneMissed"]

_PING = pack_command("PING")


class LaneMissed(StorageError):
    """The lane could not run the call (not connected, or no reply came): the caller
    runs it through the pool."""


class _LaneProtocol(RawProtocol):
    """Replies answer the waiting calls in order (``waiting``: future, or None for a
    reply nobody reads, and the send time)."""

    def __init__(self) -> None:
        self._reader = hiredis.Reader(replyError=BaseParser.parse_error)
        self.waiting: deque[tuple[asyncio.Future[Any] | None, float]] = deque()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        reader = self._reader
        reader.feed(data)
        waiting = self.waiting
        try:
            while (reply := reader.gets()) is not False:
                fut = waiting.popleft()[0]
                if fut is not None and not fut.done():  # a cancelled caller's is dropped
                    fut.set_result(reply)
        except (hiredis.ProtocolError, IndexError):  # pragma: no cover - a broken stream
            if self.transport is not None:
                self.transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        while self.waiting:
            fut = self.waiting.popleft()[0]
            if fut is not None and not fut.done():
                fut.set_exception(RedisConnectionError(f"lane connection lost: {exc}"))

    def send(self, packed: bytes, replies: int) -> asyncio.Future[Any]:
        """Write ``packed`` (``replies`` commands); the future of the last reply."""
        assert self.transport is not None
        t = time.monotonic()
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        for _ in range(replies - 1):
            self.waiting.append((None, t))
        self.waiting.append((fut, t))
        self.transport.write(packed)
        return fut

    async def command(self, *args: str | bytes) -> Any:
        """One setup command (``open_like``); an error reply raises."""
        reply = await self.send(pack_command(*args), 1)
        if isinstance(reply, Exception):
            raise reply
        return reply


class Lane:
    """``evalsha`` on a connection of its own, calls pipelined."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self._timeout: float | None = client.connection_pool.connection_kwargs.get("socket_timeout")
        self._proto: _LaneProtocol | None = None
        self._connecting: asyncio.Future[_LaneProtocol] | None = None
        self._watchdog: asyncio.Task[None] | None = None

    async def _connect(self) -> _LaneProtocol:
        """The connection, opened once for the callers that find none."""
        if self._connecting is None:
            fut = asyncio.get_running_loop().create_future()
            self._connecting = fut
            try:
                proto, _ = await open_like(self._client, _LaneProtocol, select_db=True)
            except BaseException as exc:
                self._connecting = None
                fut.set_exception(LaneMissed(f"lane connect failed: {exc!r}"))
                fut.exception()  # retrieved: no "never retrieved" warning without waiters
                if isinstance(exc, Exception):
                    raise LaneMissed from exc
                raise  # cancelled: the caller stops, it does not fall back to the pool
            self._proto = proto
            self._connecting = None
            fut.set_result(proto)
            if self._watchdog is None and self._timeout:
                self._watchdog = asyncio.create_task(self._watch(self._timeout))
            return proto
        return await asyncio.shield(self._connecting)

    async def evalsha(self, sha: str, args: Sequence[Any], *, wake_first: bool = False) -> Any:
        """Run the script; raises ``LaneMissed`` when the pool path must run it instead.

        ``wake_first``: send a PING in the same write, ahead of the script. Redis writes
        pending replies after each event-loop turn, most recently queued client first;
        the PING queues this caller before the script publishes, so a worker woken by
        the script (a handover) is written to, and starts waking, before the caller's
        reply wakes the caller (which matters when the two processes compete for a
        core right then).
        """
        proto = self._proto
        if proto is None or proto.transport is None or proto.transport.is_closing():
            self._proto = None
            proto = await self._connect()
        packed = pack_evalsha(sha, args)
        fut = proto.send(_PING + packed, 2) if wake_first else proto.send(packed, 1)
        try:
            reply = await fut
        except RedisConnectionError:
            raise LaneMissed from None
        if isinstance(reply, Exception):
            if isinstance(reply, NoScriptError):
                raise LaneMissed from None
            if isinstance(reply, ResponseError):
                raise reply  # the script failed on the server: the connection is fine
            raise reply  # pragma: no cover - hiredis gives ResponseErrors only
        return reply

    async def _watch(self, limit: float) -> None:
        """Drop the connection under a call older than ``limit`` (the server hangs or
        the network is gone): its calls then fail over to the pool path."""
        while True:
            await asyncio.sleep(limit / 4)
            proto = self._proto
            if proto is None or not proto.waiting or proto.transport is None:
                continue
            if time.monotonic() - proto.waiting[0][1] > limit:
                proto.transport.abort()

    async def close(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watchdog
            self._watchdog = None
        proto, self._proto = self._proto, None
        if proto is not None and proto.transport is not None:
            proto.transport.close()
