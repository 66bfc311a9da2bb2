"""Redis backend (redis-py asyncio): tasks, results, events and schedules.

Every multi-key state change runs as one Lua script (loaded once, called by EVALSHA;
see ``_lua``). Ready tasks sit in a sorted set per queue scored by -priority
(ties ordered by id, i.e. FIFO), delayed tasks in a sorted set by eta, leases in a
sorted set per queue by expiry with a per-task fencing token. Waiters block on one
pub/sub subscription per backend instead of polling. Results expire by key TTL (PX).
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, TypeVar

from omniq.models import (
    BackendUnavailableError,
    ClaimedTask,
    StorageError,
    TaskStatus,
    redact_url,
)
from omniq.storage._interfaces import Backend
from omniq.storage._limits import PayloadLimit
from omniq.storage._outage import Outage, describe
from omniq.storage._remote import claimed, decode_task, split_options, with_state
from omniq.storage._wake import Wake

try:
    import redis.asyncio as aioredis
    from redis.asyncio.retry import Retry
    from redis.backoff import ExponentialBackoff
    from redis.commands.core import AsyncScript
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import RedisError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    from ._lane import Lane
    from ._route import RoutedConnection, hash_tagged, parse_routed_url, stale_route
    from ._sub import Subscriber  # hiredis parses the subscriber's stream
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    from omniq.models import MissingExtraError

    raise MissingExtraError("the redis backend needs: pip install 'omniq-storage[redis]'") from exc

from ._engine import as_str
from ._lua import Scripts
from ._stores import RedisEvents, RedisResults, RedisSchedules
from ._tasks import RedisTaskQueue
from ._workers import RedisWorkers

__all__ = ["RedisBackend"]

T = TypeVar("T")
REDIS_BULK_DEFAULT = 512 * 1024 * 1024
"""Redis's default ``proto-max-bulk-len``."""
_list = list
_OPTIONS = ("prefix",)
_log = logging.getLogger("omniq.storage.redis")


class RedisBackend(Backend):
    """``redis://host:port/db?prefix=omniq:`` - all four contracts on one Redis.

    ``redis+sentinel://s1:26379,s2:26379/mymaster/0?prefix=...`` follows the primary
    that the sentinels name for ``mymaster``; ``redis+cluster://n1:7000,n2:7001?prefix=``
    uses the Redis Cluster master serving the prefix's hash tag (a prefix without one
    gets it: ``omniq:`` becomes ``{omniq}:``). See ``_route``.
    """

    def __init__(
        self,
        url: str,
        *,
        prefix: str | None = None,
        **options: Any,
    ) -> None:
        self.url = url
        clean, opts = split_options(url, _OPTIONS)
        self.prefix = prefix if prefix is not None else opts.get("prefix", "omniq:")
        if clean.startswith("redis+cluster://"):
            self.prefix = hash_tagged(self.prefix)  # one slot per backend: atomic scripts
        self._router, self._driver_url = parse_routed_url(clean, self.prefix)
        self._options = options
        self.outage = Outage("redis", clean, _log)
        """Logs losing and regaining the server once each (see ``omniq.storage._outage``)."""
        self._redis: aioredis.Redis | None = None
        self.scripts: Mapping[str, AsyncScript] = {}
        self.wake = Wake()
        """Wakes waits by notification key: ``w:<queue>``, ``r:<task id>``, ``p:<worker>``."""
        self.inboxes: dict[str, tuple[Callable[[list[ClaimedTask]], None], list[str], str]] = {}
        """Workers of this backend taking handovers: id -> (inbox, queues, registration)."""
        self.inbox_channel = f"{self.prefix}chan:{uuid.uuid4().hex}"
        """This backend's own channel: handovers to its workers are published here."""
        self._subscriber: Subscriber | None = None
        self.lane: Lane | None = None
        """Script calls one at a time skip redis-py's per-command path (``_lane``)."""
        self.tasks = RedisTaskQueue(self)
        self.results = RedisResults(self)
        self.events = RedisEvents(self)
        self.schedules = RedisSchedules(self)
        self.workers = RedisWorkers(self)
        self.share_payload_limit(PayloadLimit("Redis", source="proto-max-bulk-len"))

    @property
    def redis(self) -> aioredis.Redis:
        if self._redis is None:
            raise StorageError("RedisBackend is not connected: call connect() or use 'async with'")
        return self._redis

    async def call(self, fn: Callable[[], Awaitable[T]]) -> T:
        """Run one driver call, mapping connection failures to BackendUnavailableError."""
        try:
            out = await fn()
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            self.outage.failed(exc)
            raise BackendUnavailableError(
                f"redis unreachable at {redact_url(self._driver_url)}: {describe(exc)}"
            ) from exc
        except RedisError as exc:
            if self._router is not None and stale_route(exc):
                await self._reroute()
                self.outage.failed(exc)
                raise BackendUnavailableError(
                    f"redis {self._router.kind} moved: {describe(exc)}"
                ) from exc
            raise StorageError(f"redis error: {describe(exc)}") from exc
        self.outage.ok()
        return out

    async def _reroute(self) -> None:
        """Drop every connection (they go to a demoted or wrong node); the next ones
        ask the router where the primary is now."""
        with contextlib.suppress(Exception):
            await self.redis.connection_pool.disconnect()
        if self.lane is not None:
            with contextlib.suppress(Exception):
                await self.lane.close()
        if self._subscriber is not None:
            self._subscriber.reconnect()

    async def connect(self) -> None:
        if self._redis is not None:
            return
        opts: dict[str, Any] = {
            "retry": Retry(ExponentialBackoff(cap=0.5, base=0.02), 6),
            "retry_on_error": [RedisConnectionError, RedisTimeoutError, ConnectionResetError],
            "socket_timeout": 30,
            "health_check_interval": 10,
        }
        if self._router is not None:
            opts["connection_class"] = RoutedConnection
            opts["router"] = self._router
        opts.update(self._options)
        client = aioredis.from_url(self._driver_url, **opts)
        self._redis = client
        self.scripts = Scripts(client.register_script)
        self.lane = Lane(client)
        try:
            try:
                await client.ping()
            except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
                # not an outage yet: the caller learns it from the error, not the log
                raise BackendUnavailableError(
                    f"redis unreachable at {redact_url(self._driver_url)}: {describe(exc)}"
                ) from exc
            self.payload_limit.engine = await self._bulk_limit(client)
            sub = Subscriber(
                client,
                [f"{self.prefix}chan", self.inbox_channel],
                self._notified,
                self.wake.notify,
                health_interval=float(opts["health_check_interval"] or 10),
                outage=self.outage,
            )
            await self.call(sub.start)
            self._subscriber = sub
        except BaseException:
            await self.close()
            raise

    @staticmethod
    async def _bulk_limit(client: aioredis.Redis) -> int:
        """The server's ``proto-max-bulk-len`` (largest string argument or value), or
        its default where CONFIG is not permitted (managed services rename it)."""
        try:
            got: dict[Any, Any] = await client.config_get("proto-max-bulk-len")
            value: Any = got.get("proto-max-bulk-len", got.get(b"proto-max-bulk-len"))
            return int(value)
        except (RedisError, KeyError, ValueError, TypeError):
            return REDIS_BULK_DEFAULT

    def _notified(self, raw: bytes) -> None:
        """One pub/sub message (see ``_lua``): a handover, results, or work."""
        if raw[:2] == b"P:":  # a task handed over to a waiting worker
            self._handover(raw)
            return
        data = as_str(raw)
        if data.startswith("C:"):  # tasks cancelled (their workers stop them)
            assert self.tasks is not None
            self.tasks.cancel_feed.push(data[2:].split("\x1f"))
        elif data.startswith("R:"):  # a batch of results (see FINISH)
            self.wake.notify(["r:" + tid for tid in data[2:].split("\x1f")])
        else:
            self.wake.notify((data,))

    def _handover(self, raw: bytes) -> None:
        worker, tok, lend, env = raw[2:].split(b"\x1f", 3)
        wid = worker.decode()
        entry = self.inboxes.get(wid)
        if entry is None:
            return  # not ours (or closed): the lease lapses, or close_inbox released it
        try:
            task = with_state(decode_task(env), TaskStatus.RUNNING, 1)
        except Exception:  # pragma: no cover - a corrupt envelope: let the lease lapse
            return
        entry[0]([claimed(task, tok.decode(), float(lend), wid)])
        self.wake.notify((f"p:{wid}",))

    async def close(self) -> None:
        if self._subscriber is not None:
            await self._subscriber.close()
            self._subscriber = None
        if self.lane is not None:
            with contextlib.suppress(Exception):
                await self.lane.close()
            self.lane = None
        if self._redis is not None:
            with contextlib.suppress(Exception):
                await self._redis.aclose()
            self._redis = None

    async def drop(self) -> int:
        """Delete every key under this backend's prefix (tests, reset)."""
        r = self.redis
        n = 0
        keys: AsyncIterator[bytes] = r.scan_iter(match=f"{self.prefix}*", count=1000)
        batch: list[bytes] = []
        async for k in keys:
            batch.append(k)
            if len(batch) >= 500:
                n += int(await r.delete(*batch))
                batch = []
        if batch:
            n += int(await r.delete(*batch))
        return n
