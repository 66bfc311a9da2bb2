"""NATS JetStream backend (nats-py): tasks, results, events and schedules.

Layout under a namespace ``NS`` (URL option ``namespace``, default ``OMNIQ``):

- ``NS_TASKS`` KV bucket: one record per task (``_nats_tasks.Rec``); every state change
  is a revision-checked write (compare-and-set on the key's last sequence), so two
  workers never both win a claim, complete or dependency release;
- ``NS_KEYS`` KV bucket: idempotency key -> task id, taken with a create (fails if the
  key exists) or a revision-checked takeover once the holder is terminal;
- ``NS_WORK`` work-queue stream: ``NS.work.<queue>.<priority>`` carries one message per
  ready task (one durable pull consumer per queue and priority, explicit ack), and
  ``NS.timer.{eta,lease,ttl}`` carry timers that are nak'ed with a delay until due;
- ``NS_RESULTS`` / ``NS_SCHED`` KV buckets, ``NS_EVENTS`` stream (limits retention).

All streams use file storage and ``replicas`` (default 1). See docs/storage.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import json
import re
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import msgspec

from omniq.models import BackendUnavailableError, StorageError

from ._interfaces import Backend
from ._remote import split_options

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
        KeyValueConfig,
        RetentionPolicy,
        StorageType,
        StreamConfig,
    )
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    from omniq.models import MissingExtraError

    raise MissingExtraError("the nats backend needs: pip install 'omniq-storage[nats]'") from exc

__all__ = ["JS", "NatsBackend", "token"]

T = TypeVar("T")
_OPTIONS = ("namespace", "replicas")
_SAFE = re.compile(r"[A-Za-z0-9_-]{1,48}")
_WRONG_LAST = (10071, 10164)
_UNAVAILABLE = (
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
ACK_WAIT = 5.0
"""Seconds before a pulled but unacknowledged message is delivered again."""


def token(name: str) -> str:
    """A subject token / key naming ``name`` (queue, task id): itself when it is
    plainly safe, else ``_h`` + a hash of it."""
    if _SAFE.fullmatch(name) and not name.startswith("_h"):
        return name
    return "_h" + hashlib.sha1(name.encode()).hexdigest()[:24]


class _PubAck(msgspec.Struct):
    seq: int = 0
    error: dict[str, Any] | None = None


_pub_ack = msgspec.json.Decoder(_PubAck)


def _status(msg: Msg) -> str | None:
    return msg.headers.get("Status") if msg.headers and not msg.data else None


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
        self._waiting: dict[str, asyncio.Future[Msg]] = {}

    async def start(self) -> None:
        self._sub = await self.nc.subscribe(self._timer_inbox, cb=self._on_timer_msg)
        self._resp_sub = await self.nc.subscribe(self._resp + ".*", cb=self._on_reply)

    def fail_pending(self) -> None:
        """The connection dropped: requests already sent will get no reply; fail them now
        (their effect is unknown, as with any lost reply) instead of at their timeout."""
        waiting, self._waiting = self._waiting, {}
        for fut in waiting.values():
            if not fut.done():
                fut.set_exception(nats.errors.ConnectionReconnectingError())

    async def _on_reply(self, msg: Msg) -> None:
        fut = self._waiting.pop(msg.subject[len(self._resp) + 1 :], None)
        if fut is not None and not fut.done():
            fut.set_result(msg)

    async def many(self, reqs: Sequence[tuple[str, bytes, dict[str, str] | None]]) -> list[Msg]:
        """Send requests back to back and await all replies (one timeout for the batch):
        far cheaper than a task and a timer per request."""
        loop = asyncio.get_running_loop()
        futs: list[asyncio.Future[Msg]] = []
        rids: list[str] = []
        try:
            for subject, payload, headers in reqs:
                rid = str(next(self._ids))
                fut: asyncio.Future[Msg] = loop.create_future()
                self._waiting[rid] = fut
                rids.append(rid)
                futs.append(fut)
                await self.nc.publish(
                    subject, payload, reply=f"{self._resp}.{rid}", headers=headers
                )
            if futs:
                _, pending = await asyncio.wait(futs, timeout=5.0)
                if pending:
                    raise nats.errors.TimeoutError
            errors = [e for f in futs if (e := f.exception()) is not None]
            if errors:
                raise errors[0]
            out = [f.result() for f in futs]
        finally:
            for rid in rids:
                self._waiting.pop(rid, None)
        for m in out:
            if _status(m) == "503":
                raise nats.errors.NoRespondersError
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
        msg = await self.request("$JS.API." + subject, json.dumps(body or {}).encode())
        resp: dict[str, Any] = json.loads(msg.data)
        err = resp.get("error")
        if err:
            raise nats.js.errors.APIError.from_error(err)
        return resp

    async def publish(
        self, subject: str, payload: bytes, headers: dict[str, str] | None = None
    ) -> int | None:
        """Publish to a stream; the sequence, or None if an expected-last-sequence
        header did not match (someone else wrote first)."""
        return (await self.publish_many([(subject, payload, headers)]))[0]

    async def publish_many(
        self, items: Sequence[tuple[str, bytes, dict[str, str] | None]]
    ) -> list[int | None]:
        out: list[int | None] = []
        for msg in await self.many(items):
            ack = _pub_ack.decode(msg.data)
            if ack.error is not None:
                if ack.error.get("err_code") in _WRONG_LAST:
                    out.append(None)
                    continue
                raise nats.js.errors.APIError.from_error(ack.error)
            out.append(ack.seq)
        return out

    async def kv_get(self, bucket: str, key: str) -> tuple[bytes | None, int]:
        """(value, revision); value None for a missing or deleted key (revision 0 if it
        never existed, else the tombstone's)."""
        return (await self.kv_get_many(bucket, [key]))[0]

    async def kv_get_many(self, bucket: str, keys: Sequence[str]) -> list[tuple[bytes | None, int]]:
        pre = f"$JS.API.DIRECT.GET.KV_{bucket}.$KV.{bucket}."
        out: list[tuple[bytes | None, int]] = []
        for msg in await self.many([(pre + k, b"", None) for k in keys]):
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

    async def kv_put(
        self, bucket: str, key: str, value: bytes, last: int | None = None
    ) -> int | None:
        """Write ``key``; with ``last``, only if its revision is still ``last`` (0: the key
        must not exist). Returns the new revision, or None when the check failed."""
        return (await self.kv_put_many(bucket, [(key, value, last)]))[0]

    async def kv_put_many(
        self, bucket: str, items: Sequence[tuple[str, bytes, int | None]]
    ) -> list[int | None]:
        return await self.publish_many(
            [
                (
                    f"$KV.{bucket}.{key}",
                    value,
                    None if last is None else {"Nats-Expected-Last-Subject-Sequence": str(last)},
                )
                for key, value, last in items
            ]
        )

    async def kv_purge(self, bucket: str, key: str, last: int | None = None) -> bool:
        headers = {"KV-Operation": "PURGE", "Nats-Rollup": "sub"}
        if last is not None:
            headers["Nats-Expected-Last-Subject-Sequence"] = str(last)
        return await self.publish(f"$KV.{bucket}.{key}", b"", headers) is not None

    async def pull(self, stream: str, consumer: str, batch: int) -> list[Msg]:
        """Pull up to ``batch`` messages available now (a no_wait pull request)."""
        msgs: list[Msg] = []
        done = asyncio.Event()

        async def cb(msg: Msg) -> None:
            if _status(msg) is not None:
                done.set()
                return
            msgs.append(msg)
            if len(msgs) >= batch:
                done.set()

        inbox = self.nc.new_inbox()
        sub = await self.nc.subscribe(inbox, cb=cb)
        try:
            await self.nc.publish(
                f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{consumer}",
                json.dumps({"batch": batch, "no_wait": True}).encode(),
                reply=inbox,
            )
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(5.0):
                    await done.wait()
            return msgs
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


def seq_of(msg: Msg) -> int:
    """The stream sequence of a message delivered by a consumer."""
    parts = (msg.reply or "").split(".")
    return int(parts[5]) if len(parts) == 9 else int(parts[7])


class NatsBackend(Backend):
    """``nats://host:4222?namespace=OMNIQ&replicas=1`` - all four contracts on JetStream.

    Keyword options go to ``nats.connect`` (e.g. ``name``, ``user_credentials``), except
    ``connect_deadline`` (seconds allowed for the first connect, default 10)."""

    def __init__(
        self,
        url: str,
        *,
        namespace: str | None = None,
        replicas: int | None = None,
        **options: Any,
    ) -> None:
        from ._nats_queue import NatsTaskQueue
        from ._nats_store import NatsEvents, NatsResults, NatsSchedules

        self.url = url
        clean, opts = split_options(url, _OPTIONS)
        self._servers = clean.split("?", 1)[0] if clean.endswith("?") else clean
        ns = namespace if namespace is not None else opts.get("namespace", "OMNIQ")
        if not _SAFE.fullmatch(ns):
            raise StorageError(f"nats namespace {ns!r} must match [A-Za-z0-9_-]+")
        self.ns = ns
        self.replicas = int(replicas if replicas is not None else opts.get("replicas", 1))
        self._options = options
        self._nc: Client | None = None
        self._js: JS | None = None
        self.tasks_bucket = f"{ns}_TASKS"
        self.keys_bucket = f"{ns}_KEYS"
        self.results_bucket = f"{ns}_RESULTS"
        self.sched_bucket = f"{ns}_SCHED"
        self.work_stream = f"{ns}_WORK"
        self.events_stream = f"{ns}_EVENTS"
        self._consumers: set[str] = set()
        self.tasks = NatsTaskQueue(self)
        self.results = NatsResults(self)
        self.events = NatsEvents(self)
        self.schedules = NatsSchedules(self)

    @property
    def js(self) -> JS:
        if self._js is None:
            raise StorageError("NatsBackend is not connected: call connect() or use 'async with'")
        return self._js

    async def call(self, fn: Callable[[], Awaitable[T]]) -> T:
        """Run driver calls, mapping connection failures to BackendUnavailableError."""
        try:
            return await fn()
        except _UNAVAILABLE as exc:
            raise BackendUnavailableError(f"nats unreachable at {self._servers}: {exc!r}") from exc
        except nats.errors.Error as exc:
            raise StorageError(f"nats error: {exc!r}") from exc

    async def connect(self) -> None:
        if self._nc is not None:
            return
        opts: dict[str, Any] = {
            "servers": [self._servers],
            "max_reconnect_attempts": -1,
            "reconnect_time_wait": 0.1,
            "connect_timeout": 2,
            "allow_reconnect": True,
            "ping_interval": 5,
            "max_outstanding_pings": 2,
            "disconnected_cb": self._disconnected,
        }
        opts.update(self._options)
        deadline = float(opts.pop("connect_deadline", 10.0))
        try:
            async with asyncio.timeout(deadline):  # the client retries the first connect too
                nc = await nats.connect(**opts)
        except Exception as exc:
            raise BackendUnavailableError(f"nats unreachable at {self._servers}: {exc!r}") from exc
        self._nc = nc
        from ._nats_queue import on_timer

        self._js = JS(nc, lambda m: on_timer(self, m))
        try:
            await self.call(self._js.start)
            await self.call(self._ensure_streams)
        except BaseException:
            await self.close()
            raise

    async def _disconnected(self) -> None:
        if self._js is not None:
            self._js.fail_pending()

    async def _ensure_streams(self) -> None:
        js = self._nc.jetstream()  # type: ignore[union-attr]
        for bucket in (self.tasks_bucket, self.keys_bucket, self.results_bucket, self.sched_bucket):
            with contextlib.suppress(nats.js.errors.BadRequestError):
                await js.create_key_value(
                    KeyValueConfig(
                        bucket=bucket,
                        history=1,
                        storage=StorageType.FILE,
                        replicas=self.replicas,
                        direct=True,
                    )
                )
        await self._add_stream(
            StreamConfig(
                name=self.work_stream,
                subjects=[f"{self.ns}.work.>", f"{self.ns}.timer.>"],
                retention=RetentionPolicy.WORK_QUEUE,
                storage=StorageType.FILE,
                num_replicas=self.replicas,
                duplicate_window=120.0,
            )
        )
        await self._add_stream(
            StreamConfig(
                name=self.events_stream,
                subjects=[f"{self.ns}.ev.>"],
                retention=RetentionPolicy.LIMITS,
                storage=StorageType.FILE,
                num_replicas=self.replicas,
            )
        )
        for kind in ("eta", "lease", "ttl"):
            await self.ensure_consumer(f"timer-{kind}", f"{self.ns}.timer.{kind}")

    async def _add_stream(self, cfg: StreamConfig) -> None:
        js = self._nc.jetstream()  # type: ignore[union-attr]
        try:
            await js.add_stream(cfg)
        except nats.js.errors.BadRequestError:
            await js.stream_info(cfg.name or "")  # exists with another config: keep it

    async def ensure_consumer(self, name: str, subject: str) -> None:
        """Create (idempotently) the durable pull consumer ``name`` on the work stream."""
        if name in self._consumers:
            return
        cfg = ConsumerConfig(
            durable_name=name,
            filter_subject=subject,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=ACK_WAIT,
            max_deliver=-1,
            max_ack_pending=-1,
            max_waiting=4096,
            deliver_policy=DeliverPolicy.ALL,
        )
        body = {"stream_name": self.work_stream, "config": cfg.as_dict()}
        try:
            await self.js.api(f"CONSUMER.DURABLE.CREATE.{self.work_stream}.{name}", body)
        except nats.js.errors.APIError as exc:
            if "already" not in str(exc).lower():
                raise
        self._consumers.add(name)

    async def close(self) -> None:
        if self._js is not None:
            await self._js.close()
            self._js = None
        if self._nc is not None:
            with contextlib.suppress(Exception):
                await self._nc.close()
            self._nc = None
        self._consumers.clear()

    async def drop(self) -> int:
        """Delete every stream and bucket of this namespace (tests, reset)."""
        n = 0
        for name in (
            self.work_stream,
            self.events_stream,
            *(f"KV_{b}" for b in (self.tasks_bucket, self.keys_bucket)),
            *(f"KV_{b}" for b in (self.results_bucket, self.sched_bucket)),
        ):
            with contextlib.suppress(nats.js.errors.NotFoundError):
                await self.js.api(f"STREAM.DELETE.{name}")
                n += 1
        self._consumers.clear()
        return n
