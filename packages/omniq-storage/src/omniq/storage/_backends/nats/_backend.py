"""NATS JetStream backend (nats-py): tasks, results, events and schedules.

Layout under a namespace ``NS`` (URL option ``namespace``, default ``OMNIQ``):

- ``NS_TASKS`` KV bucket: one record per task (``_records.Rec``); every state change
  is a revision-checked write (compare-and-set on the key's last sequence), so two
  workers never both win a claim, complete or dependency release;
- ``NS_KEYS`` KV bucket: idempotency key -> task id, taken with a create (fails if the
  key exists) or a revision-checked takeover once the holder is terminal;
- ``NS_WORK`` work-queue stream: ``NS.work.<queue>.<priority>`` carries one message per
  ready task (one durable pull consumer per queue and priority, explicit ack), and
  ``NS.timer.{eta,lease,ttl}`` carry timers that are nak'ed with a delay until due;
- ``NS_RESULTS`` / ``NS_SCHED`` KV buckets, ``NS_EVENTS`` stream (limits retention);
- ``NS_QUEUES`` KV bucket: the paused queues (``_paused``).

All streams use file storage and ``replicas`` (default 1). See docs/storage.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from omniq.models import BackendUnavailableError, MissingExtraError, StorageError, redact_url
from omniq.storage._interfaces import Backend
from omniq.storage._limits import PayloadLimit
from omniq.storage._outage import Outage, describe
from omniq.storage._remote import split_hosts, split_options
from omniq.storage._wake import Wake

try:
    import nats
    import nats.errors
    import nats.js.errors
    from nats.aio.client import Client
    from nats.js.api import (
        AckPolicy,
        ConsumerConfig,
        DeliverPolicy,
        KeyValueConfig,
        RetentionPolicy,
        StorageType,
        StreamConfig,
    )

    from ._conn import ACK_WAIT, JS, SAFE_NAME, UNAVAILABLE
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise MissingExtraError("the nats backend needs: pip install 'omniq-storage[nats]'") from exc

from ._control import progress_bucket_config, subscribe_cancels
from ._queue import NatsTaskQueue, on_timer
from ._stores import NatsEvents, NatsResults, NatsSchedules
from ._workers import NatsWorkers

__all__ = ["NatsBackend"]

T = TypeVar("T")
NATS_FRAMING = 8 * 1024
"""Bytes of ``max_payload`` kept for what wraps a task's envelope: its record (lease,
dependents), the work message around the record, and headers."""
_OPTIONS = ("namespace", "replicas")
_log = logging.getLogger("omniq.storage.nats")
# What the client reports (error_cb) while the server cannot be reached.
_CONNECTION_ERRORS = (
    *UNAVAILABLE,
    nats.errors.NoServersError,
    nats.errors.UnexpectedEOF,
    BackendUnavailableError,
)


class NatsBackend(Backend):
    """``nats://host:4222?namespace=OMNIQ&replicas=1`` - all four contracts on JetStream.

    A cluster is several comma-separated servers in one URL
    (``nats://a:4222,b:4222,c:4222?replicas=3``): the client connects to one, learns
    the others, and reconnects to any of them when its server goes away; ``replicas``
    sets the replicas of every stream and bucket the backend creates.

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
        self.url = url
        clean, opts = split_options(url, _OPTIONS)
        self._servers = clean.split("?", 1)[0] if clean.endswith("?") else clean
        ns = namespace if namespace is not None else opts.get("namespace", "OMNIQ")
        if not SAFE_NAME.fullmatch(ns):
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
        self.queues_bucket = f"{ns}_QUEUES"
        self.workers_bucket = f"{ns}_WORKERS"
        self.progress_bucket = f"{ns}_PROGRESS"
        self.work_stream = f"{ns}_WORK"
        self.events_stream = f"{ns}_EVENTS"
        self._consumers: set[str] = set()
        self._closing = False
        self.outage = Outage("nats", self._servers, _log)
        """Logs losing and regaining the server once each (see ``omniq.storage._outage``)."""
        self.wake = Wake()
        """Wakes result and work waits; fed by their subscriptions' callbacks."""
        self.tasks = NatsTaskQueue(self)
        self.results = NatsResults(self)
        self.tasks.results = self.results
        self.events = NatsEvents(self)
        self.schedules = NatsSchedules(self)
        self.workers = NatsWorkers(self, self.workers_bucket)
        self.share_payload_limit(PayloadLimit("NATS", source="max_payload", reserve=NATS_FRAMING))

    @property
    def js(self) -> JS:
        if self._js is None:
            raise StorageError("NatsBackend is not connected: call connect() or use 'async with'")
        return self._js

    async def call(self, fn: Callable[[], Awaitable[T]]) -> T:
        """Run driver calls, mapping connection failures to BackendUnavailableError."""
        try:
            out = await fn()
        except UNAVAILABLE as exc:
            self.outage.failed(exc)
            raise BackendUnavailableError(
                f"nats unreachable at {self._shown}: {describe(exc)}"
            ) from exc
        except BackendUnavailableError as exc:  # no reply / no responders (JetStream not up)
            self.outage.failed(exc)
            raise
        except nats.errors.Error as exc:
            raise StorageError(f"nats error: {exc!r}") from exc
        if self.outage.down and self._nc is not None and self._nc.is_connected:
            self.outage.ok()  # (a call that sent nothing proves nothing while reconnecting)
        return out

    @property
    def _shown(self) -> str:
        return redact_url(self._servers)

    async def connect(self) -> None:
        if self._nc is not None:
            return
        opts: dict[str, Any] = {
            "servers": split_hosts(self._servers),
            "max_reconnect_attempts": -1,
            "reconnect_time_wait": 0.1,
            "connect_timeout": 2,
            "allow_reconnect": True,
            "ping_interval": 5,
            "max_outstanding_pings": 2,
            "disconnected_cb": self._disconnected,
            "error_cb": self._client_error,
        }
        opts.update(self._options)
        deadline = float(opts.pop("connect_deadline", 10.0))
        until = asyncio.get_running_loop().time() + deadline
        self._closing = False
        try:
            async with asyncio.timeout(deadline):  # the client retries the first connect too
                nc = await nats.connect(**opts)
        except Exception as exc:
            raise BackendUnavailableError(
                f"nats unreachable at {self._shown}: {describe(exc)}"
            ) from exc
        self._nc = nc
        self.payload_limit.engine = nc.max_payload
        self._js = JS(nc, lambda m: on_timer(self, self.ns, m))
        self._js.replicated = self.replicas > 1
        try:
            await self.call(self._js.start)
            await self._set_up(until)
            await self.call(
                lambda: subscribe_cancels(nc, self.ns, self.tasks.cancel_feed.push)  # type: ignore[union-attr]
            )
        except BaseException:
            await self.close()
            raise

    async def _set_up(self, until: float) -> None:
        """Create the streams, buckets and timer consumers, trying again until the
        connect deadline (``until``, event-loop time) while JetStream cannot answer: a
        cluster electing a new leader after losing a node, or a server still starting,
        refuses or ignores API requests for a few seconds."""
        loop = asyncio.get_running_loop()
        pause = 0.1
        while True:
            try:
                await self.call(self._ensure_streams)
                return
            except BackendUnavailableError as exc:
                if loop.time() + pause >= until:
                    raise BackendUnavailableError(
                        f"nats at {self._shown}: JetStream did not answer within the connect "
                        f"deadline: {describe(exc.__cause__ or exc)} (is JetStream enabled on "
                        "the server: nats-server -js, or a jetstream block in its config?)"
                    ) from exc
                _log.info(
                    "JetStream at %s not answering yet (%s); trying again",
                    self._shown,
                    describe(exc.__cause__ or exc),
                )
            await asyncio.sleep(pause)
            pause = min(2 * pause, 1.0)

    async def _disconnected(self) -> None:
        if self._js is not None:
            self._js.fail_pending()
        if self._nc is not None and not self._closing:
            self.outage.failed("disconnected")

    async def _client_error(self, exc: Exception) -> None:
        """nats-py's error callback (its default logs every reconnect attempt with a
        traceback): connection failures go to the outage tracker, others are logged
        once each without the traceback of a failed socket call."""
        if self._closing:
            return
        if isinstance(exc, _CONNECTION_ERRORS):
            if self._nc is None:  # the first connect: connect() raises when it gives up
                _log.debug("nats connect attempt to %s failed: %s", self._shown, describe(exc))
            else:
                self.outage.failed(exc)
        elif isinstance(exc, nats.errors.Error):
            _log.warning("nats client error on %s: %s", self._shown, describe(exc))
        else:  # raised by one of our subscription callbacks
            _log.error("nats callback failed on %s: %s", self._shown, describe(exc), exc_info=exc)

    async def _ensure_streams(self) -> None:
        js = self._nc.jetstream()  # type: ignore[union-attr]
        for bucket in (
            self.tasks_bucket,
            self.keys_bucket,
            self.results_bucket,
            self.sched_bucket,
            self.queues_bucket,
            self.workers_bucket,
        ):
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
        with contextlib.suppress(nats.js.errors.BadRequestError):
            await js.create_key_value(progress_bucket_config(self.progress_bucket, self.replicas))
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
        self._closing = True
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
            *(
                f"KV_{b}"
                for b in (
                    self.results_bucket,
                    self.sched_bucket,
                    self.queues_bucket,
                    self.workers_bucket,
                    self.progress_bucket,
                )
            ),
        ):
            with contextlib.suppress(nats.js.errors.NotFoundError):
                await self.js.api(f"STREAM.DELETE.{name}")
                n += 1
        self._consumers.clear()
        return n
