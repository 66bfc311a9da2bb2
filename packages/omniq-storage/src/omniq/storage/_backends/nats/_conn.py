"""The NATS JetStream connection helpers of the NATS backend: subject tokens, and
``JS``, thin JetStream requests over one connection (see ``_backend`` for the layout)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import itertools
import json
import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import msgspec

from omniq.models import BackendUnavailableError, MissingExtraError, StorageError

try:
    import nats
    import nats.errors
    import nats.js.errors
    from nats.aio.client import Client
    from nats.aio.msg import Msg
    from nats.js.api import (
        AckPolicy,
        ConsumerConfig,
        DeliverPolicy,
    )
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise MissingExtraError("the nats backend needs: pip install 'omniq-storage[nats]'") from exc

__all__ = [
    "ACK_WAIT",
    "JS",
    "SAFE_NAME",
    "UNAVAILABLE",
    "api_answer",
    "api_request",
    "kv_puts",
    "pub_ack",
    "seq_of",
    "subscribe_direct",
    "token",
    "write_now",
]

SAFE_NAME = re.compile(r"[A-Za-z0-9_-]{1,48}")
_WRONG_LAST = (10071, 10164)
UNAVAILABLE = (
    nats.errors.TimeoutError,
    nats.errors.ConnectionClosedError,
    nats.errors.NoRespondersError,
    nats.errors.ConnectionReconnectingError,
    nats.errors.StaleConnectionError,
    nats.errors.OutboundBufferLimitError,
    nats.errors.FlushTimeoutError,
    nats.js.errors.ServiceUnavailableError,
    nats.js.errors.NoStreamResponseError,
    OSError,
    asyncio.TimeoutError,
)
_log = logging.getLogger("omniq.storage.nats")

ACK_WAIT = 5.0
"""Seconds before a pulled but unacknowledged message is delivered again."""


def token(name: str) -> str:
    """A subject token / key naming ``name`` (queue, task id): itself when it is
    plainly safe, else ``_h`` + a hash of it."""
    if SAFE_NAME.fullmatch(name) and not name.startswith("_h"):
        return name
    return "_h" + hashlib.sha1(name.encode()).hexdigest()[:24]


class _PubAck(msgspec.Struct):
    seq: int = 0
    error: dict[str, Any] | None = None


_pub_ack = msgspec.json.Decoder(_PubAck)


class _MsgGet(msgspec.Struct):
    last_by_subj: str


class _ApiError(msgspec.Struct):
    code: int = 0
    err_code: int = 0
    description: str = ""


class _StoredMsg(msgspec.Struct):
    seq: int
    data: bytes | None = None
    hdrs: bytes | None = None


class _MsgGetAnswer(msgspec.Struct):
    message: _StoredMsg | None = None
    error: _ApiError | None = None


_msg_get_enc = msgspec.json.Encoder().encode
_msg_get_dec = msgspec.json.Decoder(_MsgGetAnswer).decode
_NO_MESSAGE = 10037
"""The JetStream API's error code for a message get that found no message."""
_TOMBSTONE = re.compile(rb"(?im)^KV-Operation:\s*(DEL|PURGE)\s*$")
"""A KV delete or purge marker in a stored message's header block."""


def _status(msg: Msg) -> str | None:
    return msg.headers.get("Status") if msg.headers and not msg.data else None


class _Batch:
    """The replies of one ``JS.many`` batch: ``fut`` gets them all, in request order,
    once the last one came (or the first failure)."""

    __slots__ = ("fut", "left", "out")

    def __init__(self, fut: asyncio.Future[list[Msg]], n: int) -> None:
        self.fut = fut
        self.left = n
        self.out: list[Msg | None] = [None] * n

    def answer(self, i: int, msg: Msg) -> None:
        if self.out[i] is None:
            self.out[i] = msg
            self.left -= 1
            if not self.left and not self.fut.done():
                self.fut.set_result(self.out)  # type: ignore[arg-type]  # all set now

    def fail(self, exc: BaseException) -> None:
        if not self.fut.done():
            self.fut.set_exception(exc)


class _Direct:
    """Stands in for the future of a nats-py subscription (``subscribe(future=...)``),
    which the client resolves inside its read loop, so each message reaches ``fn`` as it
    is parsed: no queue and no task per subscription, one event-loop turn less per
    message than a callback subscription. ``fn`` must be quick and must not block; an
    exception it raises is logged, never let into the read loop."""

    __slots__ = ("_fn",)

    def __init__(self, fn: Callable[[Msg], None]) -> None:
        self._fn = fn

    def cancelled(self) -> bool:
        return False

    def done(self) -> bool:
        return False

    def set_result(self, msg: Msg) -> None:
        try:
            self._fn(msg)
        except Exception:  # a handler bug must not stop the connection
            _log.exception("nats: a message handler failed")


async def subscribe_direct(nc: Client, subject: str, fn: Callable[[Msg], None]) -> Any:
    """Subscribe ``fn`` to ``subject``, called in the connection's read loop (``_Direct``)."""
    return await nc.subscribe(subject, future=_Direct(fn))  # type: ignore[arg-type]


def write_now(nc: Client) -> None:
    """Write the commands nats-py has buffered to the socket now, instead of on its
    flusher task's next turn (one event-loop turn later, after whatever else is ready).
    Order is kept: the whole buffer goes, as the flusher would send it. While the
    client is not connected (reconnecting) the buffer stays for nats-py to replay; a
    client without these internals is left to its flusher."""
    pending = getattr(nc, "_pending", None)
    transport = getattr(nc, "_transport", None)
    if pending and transport is not None and nc.is_connected:
        transport.writelines(pending)
        nc._pending = []
        nc._pending_data_size = 0


class JS:
    """Thin, fast JetStream helpers over one connection: revision-checked KV writes,
    direct gets, no-wait pulls, blocking timer pulls, and snapshot scans."""

    def __init__(self, nc: Client, on_timer: Callable[[Msg], Awaitable[None]]) -> None:
        self.nc = nc
        self._timer_inbox = nc.new_inbox()
        self._on_timer = on_timer
        self.timer_event = asyncio.Event()
        self._sub: Any = None
        self._resp_sub: Any = None
        self._resp = nc.new_inbox()
        self._ids = itertools.count(1)
        self._waiting: dict[str, tuple[_Batch, int]] = {}
        """Request id -> the batch waiting for its reply and the reply's index there."""
        self.replicated = False
        """Set by the backend when its streams have replicas (always a cluster)."""

    def apart(self) -> bool:
        """Whether streams may have their leaders on different servers: replicated
        streams, or a server that names others (a cluster, even with one replica)."""
        return self.replicated or len(self.nc.servers) > 1

    async def start(self) -> None:
        self._sub = await self.nc.subscribe(self._timer_inbox, cb=self._on_timer_msg)
        self._resp_sub = await subscribe_direct(self.nc, self._resp + ".*", self._on_reply)

    def fail_pending(self) -> None:
        """The connection dropped: requests already sent will get no reply; fail them now
        (their effect is unknown, as with any lost reply) instead of at their timeout."""
        waiting, self._waiting = self._waiting, {}
        for batch, _ in waiting.values():
            batch.fail(nats.errors.ConnectionReconnectingError())

    def _on_reply(self, msg: Msg) -> None:
        got = self._waiting.pop(msg.subject[len(self._resp) + 1 :], None)
        if got is not None:
            got[0].answer(got[1], msg)

    async def many(self, reqs: Sequence[tuple[str, bytes, dict[str, str] | None]]) -> list[Msg]:
        """Send requests back to back and await all replies (one timeout for the batch):
        far cheaper than a task and a timer per request. The replies are routed in the
        connection's read loop (``subscribe_direct``) and the batch is written at once
        (``write_now``), so a round trip costs no event-loop turns beyond the reply's."""
        if not reqs:
            return []
        batch = _Batch(asyncio.get_running_loop().create_future(), len(reqs))
        rids: list[str] = []
        nc = self.nc
        try:
            for i, (subject, payload, headers) in enumerate(reqs):
                rid = str(next(self._ids))
                self._waiting[rid] = (batch, i)
                rids.append(rid)
                await nc.publish(subject, payload, reply=f"{self._resp}.{rid}", headers=headers)
            write_now(nc)
            try:
                async with asyncio.timeout(5.0):
                    out = await batch.fut
            except TimeoutError:
                raise BackendUnavailableError("nats: no reply to a request within 5 s") from None
        finally:
            waiting = self._waiting
            for rid in rids:
                waiting.pop(rid, None)
        for m in out:
            if _status(m) == "503":
                raise BackendUnavailableError("nats: no responders (is JetStream enabled?)")
        return out

    async def _on_timer_msg(self, msg: Msg) -> None:
        """Messages answering blocking timer pulls (possibly of an abandoned wait)."""
        if _status(msg) is None and msg.reply:
            await self._on_timer(msg)
        self.timer_event.set()

    async def pull_timer(self, stream: str, consumer: str, expires: float) -> None:
        """Ask for the next timer of ``consumer`` within ``expires`` seconds; it is
        handled by ``on_timer`` whenever it arrives, then ``timer_event`` is set."""
        body = {"batch": 1, "expires": int(expires * 1e9)}
        await self.nc.publish(
            f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{consumer}",
            json.dumps(body).encode(),
            reply=self._timer_inbox,
        )

    async def request(
        self, subject: str, payload: bytes = b"", headers: dict[str, str] | None = None
    ) -> Msg:
        return (await self.many([(subject, payload, headers)]))[0]

    async def api(self, subject: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        return api_answer((await self.many([api_request(subject, body)]))[0])

    async def publish(
        self, subject: str, payload: bytes, headers: dict[str, str] | None = None
    ) -> int | None:
        """Publish to a stream; the sequence, or None if an expected-last-sequence
        header did not match (someone else wrote first)."""
        return (await self.publish_many([(subject, payload, headers)]))[0]

    async def publish_many(
        self, items: Sequence[tuple[str, bytes, dict[str, str] | None]]
    ) -> list[int | None]:
        return [pub_ack(msg) for msg in await self.many(items)]

    async def publish_led(
        self,
        lead: Sequence[tuple[str, bytes, dict[str, str] | None]],
        items: Sequence[tuple[str, bytes, dict[str, str] | None]],
        *,
        stored_first: bool = False,
    ) -> tuple[bool, list[int | None]]:
        """Publish ``items`` behind ``lead`` in one batch (the lead's bytes precede them
        on the connection, so whatever of the batch the server reads includes the lead).
        Returns whether every lead publish was stored, and the items' ``publish_many``
        answers.

        In a cluster (``apart``) the streams' leaders store independently, on different
        servers: an item can be stored while the lead's stream has no leader (no
        responders) or loses the lead with its server. There the lead is sent first and
        the items only once every lead publish is acknowledged (one more round trip);
        a lead not stored raises before any item is sent. ``stored_first`` asks for that
        order on one server too: a server that stops stores what it read of a batch
        stream by stream, so it may keep an item and drop the lead."""
        if lead and items and (stored_first or self.apart()):
            await self.publish_many(lead)
            return True, await self.publish_many(items)
        msgs = await self.many([*lead, *items])
        stored = True
        for m in msgs[: len(lead)]:
            try:
                pub_ack(m)
            except nats.js.errors.APIError:
                stored = False
        return stored, [pub_ack(m) for m in msgs[len(lead) :]]

    async def kv_get(
        self, bucket: str, key: str, *, leader: bool = False
    ) -> tuple[bytes | None, int]:
        """(value, revision); value None for a missing or deleted key (revision 0 if it
        never existed, else the tombstone's). ``leader``: see ``kv_get_many``."""
        return (await self.kv_get_many(bucket, [key], leader=leader))[0]

    async def kv_get_many(
        self, bucket: str, keys: Sequence[str], *, leader: bool = False
    ) -> list[tuple[bytes | None, int]]:
        """``kv_get`` for many keys, the requests sent back to back. A direct get may be
        answered by any replica of a replicated bucket, one that has not stored the
        latest acknowledged write yet; so with replicas (``replicated``), or when
        ``leader`` asks for it, the bucket's stream leader answers every read, and a
        read sent after a write's acknowledgement sees that write."""
        reqs, parse = self.kv_get_requests(bucket, keys, leader=leader)
        return parse(await self.many(reqs))

    async def publish_and_get(
        self,
        items: Sequence[tuple[str, bytes, dict[str, str] | None]],
        bucket: str,
        keys: Sequence[str],
    ) -> tuple[list[int | None], list[tuple[bytes | None, int]]]:
        """``publish_many(items)`` and ``kv_get_many(bucket, keys)`` in one batch, the
        reads behind the publishes on the connection: one round trip."""
        reqs, parse = self.kv_get_requests(bucket, keys)
        msgs = await self.many([*items, *reqs])
        n = len(items)
        return [pub_ack(m) for m in msgs[:n]], parse(msgs[n:])

    def kv_get_requests(
        self, bucket: str, keys: Sequence[str], *, leader: bool = False
    ) -> tuple[
        list[tuple[str, bytes, dict[str, str] | None]],
        Callable[[Sequence[Msg]], list[tuple[bytes | None, int]]],
    ]:
        """The requests of ``kv_get_many`` and the function decoding their replies, to
        send in a ``many`` batch with other requests."""
        reqs: list[tuple[str, bytes, dict[str, str] | None]]
        if leader or self.replicated:
            subject = f"$JS.API.STREAM.MSG.GET.KV_{bucket}"
            reqs = [(subject, _msg_get_enc(_MsgGet(f"$KV.{bucket}.{k}")), None) for k in keys]
            return reqs, functools.partial(_leader_answers, bucket)
        pre = f"$JS.API.DIRECT.GET.KV_{bucket}.$KV.{bucket}."
        reqs = [(pre + k, b"", None) for k in keys]
        return reqs, functools.partial(_direct_answers, bucket)

    async def kv_put(
        self, bucket: str, key: str, value: bytes, last: int | None = None
    ) -> int | None:
        """Write ``key``; with ``last``, only if its revision is still ``last`` (0: the key
        must not exist). Returns the new revision, or None when the check failed."""
        return (await self.kv_put_many(bucket, [(key, value, last)]))[0]

    async def kv_put_many(
        self, bucket: str, items: Sequence[tuple[str, bytes, int | None]]
    ) -> list[int | None]:
        return await self.publish_many(kv_puts(bucket, items))

    async def kv_purge(self, bucket: str, key: str, last: int | None = None) -> bool:
        headers = {"KV-Operation": "PURGE", "Nats-Rollup": "sub"}
        if last is not None:
            headers["Nats-Expected-Last-Subject-Sequence"] = str(last)
        return await self.publish(f"$KV.{bucket}.{key}", b"", headers) is not None

    async def pull(self, stream: str, consumer: str, batch: int) -> list[Msg]:
        """Pull up to ``batch`` messages available now (a no_wait pull request)."""
        msgs: list[Msg] = []
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def cb(msg: Msg) -> None:
            if done.done():
                return
            if _status(msg) is not None:
                done.set_result(None)
                return
            msgs.append(msg)
            if len(msgs) >= batch:
                done.set_result(None)

        inbox = self.nc.new_inbox()
        sub = await subscribe_direct(self.nc, inbox, cb)
        try:
            await self.nc.publish(
                f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{consumer}",
                json.dumps({"batch": batch, "no_wait": True}).encode(),
                reply=inbox,
            )
            write_now(self.nc)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(5.0):
                    await done
            return list(msgs)
        finally:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    async def scan(self, stream: str, subject: str, *, last_per_subject: bool) -> list[Msg]:
        """A snapshot of a stream's messages on ``subject`` (only the newest per subject
        with ``last_per_subject``), read through a short-lived ephemeral consumer."""
        pending = await self.api(f"STREAM.INFO.{stream}", {"subjects_filter": subject})
        if not pending["state"].get("subjects"):
            return []
        cfg = ConsumerConfig(
            filter_subject=subject,
            ack_policy=AckPolicy.NONE,
            deliver_policy=DeliverPolicy.LAST_PER_SUBJECT
            if last_per_subject
            else DeliverPolicy.ALL,
            inactive_threshold=30.0,
            mem_storage=True,
            num_replicas=1,
        )
        info = await self.api(
            f"CONSUMER.CREATE.{stream}", {"stream_name": stream, "config": cfg.as_dict()}
        )
        name = info["name"]
        remaining = int(info.get("num_pending", 0))
        out: list[Msg] = []
        try:
            while remaining > 0:
                got = await self.pull(stream, name, min(remaining, 5000))
                if not got:
                    break
                out += got
                remaining -= len(got)
        finally:
            with contextlib.suppress(Exception):
                await self.api(f"CONSUMER.DELETE.{stream}.{name}")
        return out

    async def close(self) -> None:
        for sub in (self._sub, self._resp_sub):
            if sub is not None:
                with contextlib.suppress(Exception):
                    await sub.unsubscribe()


def _direct_answers(bucket: str, msgs: Sequence[Msg]) -> list[tuple[bytes | None, int]]:
    """Direct gets' replies as (value, revision): None for a missing (revision 0) or
    deleted key."""
    out: list[tuple[bytes | None, int]] = []
    for msg in msgs:
        status = _status(msg)
        if status == "404":
            out.append((None, 0))
            continue
        if status is not None:
            raise StorageError(f"nats direct get on {bucket}: status {status}")
        hdrs = msg.headers or {}
        rev = int(hdrs.get("Nats-Sequence", 0))
        if hdrs.get("KV-Operation") in ("DEL", "PURGE"):
            out.append((None, rev))
        else:
            out.append((msg.data, rev))
    return out


def _leader_answers(bucket: str, msgs: Sequence[Msg]) -> list[tuple[bytes | None, int]]:
    """``STREAM.MSG.GET`` replies (answered by the stream leader), as ``_direct_answers``."""
    out: list[tuple[bytes | None, int]] = []
    for msg in msgs:
        try:
            resp = _msg_get_dec(msg.data)
        except msgspec.DecodeError as exc:
            raise StorageError(f"nats message get on {bucket}: {exc}") from None
        if resp.error is not None:
            if resp.error.err_code == _NO_MESSAGE:
                out.append((None, 0))
                continue
            raise StorageError(f"nats message get on {bucket}: {resp.error.description}")
        m = resp.message
        if m is None:
            raise StorageError(f"nats message get on {bucket}: no message in the answer")
        if m.hdrs is not None and _TOMBSTONE.search(m.hdrs):
            out.append((None, m.seq))
        else:
            out.append((m.data or b"", m.seq))
    return out


def api_request(
    subject: str, body: dict[str, Any] | None = None
) -> tuple[str, bytes, dict[str, str] | None]:
    """A JetStream API request (``subject`` after ``$JS.API.``), for ``JS.many``."""
    return "$JS.API." + subject, json.dumps(body or {}).encode(), None


def api_answer(msg: Msg) -> dict[str, Any]:
    """A JetStream API reply's JSON; raises the API error it carries."""
    resp: dict[str, Any] = json.loads(msg.data)
    err = resp.get("error")
    if err:
        raise nats.js.errors.APIError.from_error(err)
    return resp


def pub_ack(msg: Msg) -> int | None:
    """The stream sequence a publish's reply acknowledges, or None if an
    expected-last-sequence header did not match (someone else wrote first)."""
    ack = _pub_ack.decode(msg.data)
    if ack.error is not None:
        if ack.error.get("err_code") in _WRONG_LAST:
            return None
        raise nats.js.errors.APIError.from_error(ack.error)
    return ack.seq


def kv_puts(
    bucket: str, items: Sequence[tuple[str, bytes, int | None]]
) -> list[tuple[str, bytes, dict[str, str] | None]]:
    """The publishes writing KV ``items`` (key, value, expected revision or None), to
    send with ``JS.many`` alongside other requests (see ``JS.kv_put``)."""
    return [
        (
            f"$KV.{bucket}.{key}",
            value,
            None if last is None else {"Nats-Expected-Last-Subject-Sequence": str(last)},
        )
        for key, value, last in items
    ]


def seq_of(msg: Msg) -> int:
    """The stream sequence of a message delivered by a consumer."""
    parts = (msg.reply or "").split(".")
    return int(parts[5]) if len(parts) == 9 else int(parts[7])
