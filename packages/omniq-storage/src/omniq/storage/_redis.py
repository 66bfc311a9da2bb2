"""Redis backend (redis-py asyncio): tasks, results, events and schedules.

Every multi-key state change runs as one Lua script (loaded once, called by EVALSHA;
see ``_redis_lua``). Ready tasks sit in a sorted set per queue scored by -priority
(ties ordered by id, i.e. FIFO), delayed tasks in a sorted set by eta, leases in a
sorted set per queue by expiry with a per-task fencing token. Waiters block on one
pub/sub subscription per backend instead of polling. Results expire by key TTL (PX).
"""

from __future__ import annotations

import contextlib
import heapq
import math
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, TypeVar

import msgspec

from omniq.models import (
    BackendUnavailableError,
    ClaimedTask,
    StorageError,
    Task,
    TaskResult,
    TaskStatus,
    now,
)

from . import _redis_lua as lua
from ._interfaces import (
    Backend,
    Completion,
    CompletionReport,
    DependencyPolicy,
    LeaseRef,
    ResultStorage,
    RetryRequest,
    TaskQueueStorage,
)
from ._remote import (
    Waiters,
    claimed,
    decode_task,
    encode,
    split_options,
    wait_event,
    with_state,
    with_state_eta,
)

try:
    import redis.asyncio as aioredis
    from redis.asyncio.retry import Retry
    from redis.backoff import ExponentialBackoff
    from redis.commands.core import AsyncScript
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import RedisError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    from ._redis_lane import Lane, LaneMissed
    from ._redis_sub import Subscriber  # hiredis parses the subscriber's stream
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    from omniq.models import MissingExtraError

    raise MissingExtraError("the redis backend needs: pip install 'omniq-storage[redis]'") from exc

from ._redis_store import RedisEvents, RedisResults, RedisSchedules, _opt, _s

__all__ = ["RedisBackend"]

T = TypeVar("T")
_list = list
_OPTIONS = ("prefix",)


_tasks_decoder = msgspec.msgpack.Decoder(list[Task])
REGISTRATION = 2.0
"""Longest idle registration for handovers (seconds, plus 1 s of grace); a waiting
worker re-registers at least this often."""


def _float(v: bytes | None) -> float | None:
    return float(v) if v else None


def _fs(v: float | None) -> str:
    return "" if v is None else repr(v)


def _decode_tasks(blob: bytes) -> list[Task]:
    """The claimed envelopes, sent by the claim script as one msgpack array."""
    return _tasks_decoder.decode(blob)


class _Base:
    def __init__(self, be: RedisBackend) -> None:
        self._be = be
        self._p = be.prefix

    async def _call(self, fn: Callable[[], Awaitable[T]]) -> T:
        return await self._be.call(fn)


class RedisTaskQueue(_Base, TaskQueueStorage):
    """Task queue on sorted sets and hashes; each operation is one Lua script."""

    async def _script(self, name: str, *args: Any) -> Any:
        be = self._be
        script = be.scripts[name]
        full = [self._p, repr(now()), *args]
        lane = be.lane
        if lane is not None and not lane.busy:
            wake = name == "enqueue"  # it may hand the task over to a waiting worker
            try:
                return await be.call(lambda: lane.evalsha(script.sha, full, wake_first=wake))
            except LaneMissed:
                pass
        return await self._call(lambda: script(args=full))

    async def enqueue(
        self, tasks: Sequence[Task], *, dependency_policy: DependencyPolicy = "cancel"
    ) -> list[Task]:
        if not tasks:
            return []
        envs = [encode(t) for t in tasks]
        meta = encode(
            [
                [
                    t.id,
                    t.queue,
                    t.priority,
                    _fs(t.eta),
                    _fs(t.expires_at),
                    t.key or "",
                    list(t.depends_on),
                    len(env),
                ]
                for t, env in zip(tasks, envs, strict=True)
            ]
        )
        args = (dependency_policy, meta, b"".join(envs))
        rows = await self._script("enqueue", *args)
        out: list[Task] = []
        for t, row in zip(tasks, rows, strict=True):
            if len(row) == 2:
                out.append(with_state(t, _s(row[1]), 0))
            else:
                stored = decode_task(row[3])
                out.append(with_state_eta(stored, _s(row[1]), int(row[2]), _float(row[4])))
        return out

    async def claim(
        self, queues: Sequence[str], worker_id: str, *, limit: int = 1, lease: float = 30.0
    ) -> list[ClaimedTask]:
        if limit <= 0 or not queues:
            return []
        until = now() + lease
        blob, meta = await self._script("claim", worker_id, repr(until), limit, *queues)
        out = []
        for i, stored in enumerate(_decode_tasks(blob)):
            tok, attempt, eta = meta[3 * i], meta[3 * i + 1], meta[3 * i + 2]
            task = with_state_eta(stored, TaskStatus.RUNNING, int(attempt), _float(eta))
            out.append(claimed(task, _s(tok), until, worker_id))
        return out

    async def renew(self, leases: Sequence[LeaseRef], lease: float) -> list[str]:
        if not leases:
            return []
        args: list[Any] = [repr(now() + lease)]
        for ref in leases:
            args += [ref.task_id, ref.token]
        return [_s(x) for x in await self._script("renew", *args)]

    @staticmethod
    def _report(res: Any) -> CompletionReport:
        done, stale, released, cancelled = res
        return CompletionReport(
            done=[_s(x) for x in done],
            stale=[_s(x) for x in stale],
            released=[_s(x) for x in released],
            cancelled=[
                with_state(decode_task(env), TaskStatus.CANCELLED, int(a))
                for _, a, env in cancelled
            ],
        )

    async def complete(
        self, completions: Sequence[Completion], *, dependency_policy: DependencyPolicy = "cancel"
    ) -> CompletionReport:
        if not completions:
            return CompletionReport()
        flat: list[Any] = []
        for c in completions:
            flat += (c.task_id, c.token, c.status)  # msgspec encodes a TaskStatus by value
        return self._report(await self._script("complete", dependency_policy, encode(flat)))

    async def finish(
        self,
        completions: Sequence[Completion],
        results: Sequence[TaskResult],
        result_store: ResultStorage | None,
        *,
        lease: float,
        dependency_policy: DependencyPolicy = "cancel",
    ) -> CompletionReport:
        """Results and completions in one script when the results live in this Redis:
        the lease check fences both, atomically, in one round trip."""
        by_id = {r.task_id: r for r in results}
        if (
            result_store is not self._be.results
            or len(by_id) != len(results)
            or not by_id.keys() <= {c.task_id for c in completions}
        ):
            return await super().finish(
                completions,
                results,
                result_store,
                lease=lease,
                dependency_policy=dependency_policy,
            )
        if not completions:
            return CompletionReport()
        flat: list[Any] = []
        blobs: list[bytes] = []
        t = now()
        for c in completions:
            res = by_id.get(c.task_id)
            if res is None:
                flat += (c.task_id, c.token, c.status, 0, "", "")
                continue
            blob = encode(res)
            blobs.append(blob)
            exp = res.expires_at
            if exp is None:
                flat += (c.task_id, c.token, c.status, len(blob), "", "")
            else:
                ms = max(1, math.ceil((exp - t) * 1000))
                flat += (c.task_id, c.token, c.status, len(blob), ms, repr(exp))
        res = await self._script("finish", dependency_policy, encode(flat), b"".join(blobs))
        return self._report(res)

    async def retry(self, requests: Sequence[RetryRequest]) -> list[str]:
        if not requests:
            return []
        args: list[Any] = ["0"]
        for r in requests:
            args += [r.task_id, r.token, _opt(r.eta)]
        return [_s(x) for x in await self._script("retry", *args)]

    async def release(self, leases: Sequence[LeaseRef]) -> list[str]:
        if not leases:
            return []
        args: list[Any] = ["1"]
        for ref in leases:
            args += [ref.task_id, ref.token, ""]
        return [_s(x) for x in await self._script("retry", *args)]

    async def cancel(
        self, task_ids: Sequence[str], *, dependency_policy: DependencyPolicy = "cancel"
    ) -> CompletionReport:
        if not task_ids:
            return CompletionReport()
        return self._report(await self._script("cancel", dependency_policy, *task_ids))

    async def reclaim_expired(self) -> list[str]:
        return [_s(x) for x in await self._script("reclaim")]

    async def expire(self, *, dependency_policy: DependencyPolicy = "cancel") -> CompletionReport:
        return self._report(await self._script("expire", dependency_policy))

    async def get(self, task_ids: Sequence[str]) -> list[Task | None]:
        if not task_ids:
            return []
        r = self._be.redis

        async def run() -> list[Any]:
            pipe = r.pipeline(transaction=False)
            for tid in task_ids:
                pipe.hmget(f"{self._p}t:{tid}", "d", "s", "a", "eta")
            return await pipe.execute()

        rows = await self._call(run)
        return [
            None
            if row[0] is None
            else with_state_eta(decode_task(row[0]), _s(row[1]), int(row[2]), _float(row[3]))
            for row in rows
        ]

    def _key(self, queue: str, status: TaskStatus | None) -> str:
        """The zset listing ``queue``'s tasks in ``status``: the lease zset for running
        tasks, else the index zset (score 0, so ordered by id)."""
        if status is not None and TaskStatus(status) is TaskStatus.RUNNING:
            return f"{self._p}l:{queue}"
        s = TaskStatus(status).value if status is not None else "all"
        return f"{self._p}i:{queue}:{s}"

    async def _index_keys(self, queue: str | None, status: TaskStatus | None) -> list[str]:
        """The per-queue zsets to read (every known queue when ``queue`` is None)."""
        if queue is not None:
            return [self._key(queue, status)]
        queues = await self._call(lambda: self._be.redis.smembers(f"{self._p}queues"))
        return [self._key(_s(q), status) for q in sorted(queues)]

    async def list(
        self,
        *,
        queue: str | None = None,
        status: TaskStatus | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[Task]:
        if limit <= 0:
            return []
        keys = await self._index_keys(queue, status)
        r = self._be.redis

        async def run() -> list[Any]:
            pipe = r.pipeline(transaction=False)
            for k in keys:
                pipe.zrange(k, 0 if len(keys) > 1 else offset, offset + limit - 1)
            return await pipe.execute()

        if status is not None and TaskStatus(status) is TaskStatus.RUNNING:
            # Lease zsets are ordered by lease end: read them whole (running tasks are
            # bounded by the workers' capacity) and order by id here.

            async def run_all() -> list[Any]:
                pipe = r.pipeline(transaction=False)
                for k in keys:
                    pipe.zrange(k, 0, -1)
                return await pipe.execute()

            every = sorted(i for part in await self._call(run_all) for i in part)
            ids = every[offset : offset + limit]
        else:
            parts = await self._call(run) if keys else []
            # Index members share score 0, so each part is in id order; merge the queues.
            merged = parts[0] if len(parts) == 1 else list(heapq.merge(*parts))
            ids = merged if len(parts) == 1 else merged[offset : offset + limit]
        return [t for t in await self.get([_s(i) for i in ids]) if t is not None]

    async def count(self, *, queue: str | None = None, status: TaskStatus | None = None) -> int:
        keys = await self._index_keys(queue, status)
        r = self._be.redis

        async def run() -> list[Any]:
            pipe = r.pipeline(transaction=False)
            for k in keys:
                pipe.zcard(k)
            return await pipe.execute()

        return sum(int(n) for n in await self._call(run)) if keys else 0

    async def counts(self) -> dict[tuple[str, TaskStatus], int]:
        r = self._be.redis
        queues = sorted(_s(q) for q in await self._call(lambda: r.smembers(f"{self._p}queues")))

        async def run() -> list[Any]:
            pipe = r.pipeline(transaction=False)
            for q in queues:
                for st in TaskStatus:
                    pipe.zcard(self._key(q, st))
            return await pipe.execute()

        res = await self._call(run)
        out: dict[tuple[str, TaskStatus], int] = {}
        it = iter(res)
        for q in queues:
            for st in TaskStatus:
                n = int(next(it))
                if n:
                    out[(q, st)] = n
        return out

    async def purge(self, *, finished_before: float, status: TaskStatus | None = None) -> int:
        only = "" if status is None else TaskStatus(status).value
        return int(await self._script("purge", repr(finished_before), only))

    async def requeue(self, task_ids: Sequence[str]) -> _list[str]:
        ids = _list(dict.fromkeys(task_ids))
        if not ids:
            return []
        return [_s(x) for x in await self._script("requeue", *ids)]

    async def wait_for_work(self, queues: Sequence[str], timeout: float) -> bool:  # noqa: ASYNC109
        return await self._wait(queues, timeout, None)

    async def wait_for_push(
        self,
        queues: Sequence[str],
        timeout: float,  # noqa: ASYNC109
        *,
        worker_id: str,
        lease: float,
        inbox: Callable[[_list[ClaimedTask]], None],
    ) -> bool:
        """Registers the worker as idle on its queues for the wait (at most
        REGISTRATION seconds, so a worker that died stops getting handovers soon) in the
        same round trip as the probe; ENQUEUE hands it a task ready now in an empty
        queue, published to this backend's listener, which calls ``inbox``."""
        member = "\x1f".join([worker_id, repr(lease), self._be.inbox_channel, *queues])
        self._be.inboxes[worker_id] = (inbox, list(queues), member)
        return await self._wait(queues, min(timeout, REGISTRATION), (worker_id, member))

    async def close_inbox(self, worker_id: str) -> _list[str]:
        entry = self._be.inboxes.pop(worker_id, None)
        if entry is None:
            return []
        _, queues, member = entry
        return [_s(x) for x in await self._script("close_inbox", worker_id, member, *queues)]

    async def _wait(
        self,
        queues: Sequence[str],
        timeout: float,  # noqa: ASYNC109
        idle: tuple[str, str] | None,
    ) -> bool:
        """Probe, then wait for a notification. ``idle`` (worker id, registration member;
        see ``_redis_lua``): register the worker as idle on ``queues`` in the probe's round
        trip, and wake for a handover to it too."""
        keys = [f"w:{q}" for q in queues]
        member = None
        if idle is not None:
            worker_id, member = idle
            keys.append(f"p:{worker_id}")
        ev = self._be.waiters.register(keys)
        try:
            r = self._be.redis
            p = self._p
            until = now() + timeout + 1.0

            async def probe() -> list[Any]:
                pipe = r.pipeline(transaction=False)
                if member is not None:
                    pipe.sadd(f"{p}queues", *queues)  # so RECLAIM sees handed-over leases
                    for q in queues:
                        pipe.zadd(f"{p}iw:{q}", {member: until})
                for q in queues:
                    pipe.zcard(f"{p}r:{q}")
                    pipe.zrange(f"{p}d:{q}", 0, 0, withscores=True)
                    pipe.zrange(f"{p}l:{q}", 0, 0, withscores=True)
                return await pipe.execute()

            res = await self._call(probe)
            if member is not None:
                res = res[1 + len(queues) :]
            t = now()
            wake_at = t + timeout
            for i in range(len(queues)):
                if int(res[3 * i]):
                    return True
                for nxt in (res[3 * i + 1], res[3 * i + 2]):
                    if nxt:
                        wake_at = min(wake_at, float(nxt[0][1]))
            if wake_at <= t:
                return True
            if await wait_event(ev, wake_at - t):
                return True
            return wake_at < t + timeout
        finally:
            self._be.waiters.unregister(keys, ev)


class RedisBackend(Backend):
    """``redis://host:port/db?prefix=omniq:`` - all four contracts on one Redis."""

    def __init__(
        self,
        url: str,
        *,
        prefix: str | None = None,
        **options: Any,
    ) -> None:
        self.url = url
        clean, opts = split_options(url, _OPTIONS)
        self._driver_url = clean
        self.prefix = prefix if prefix is not None else opts.get("prefix", "omniq:")
        self._options = options
        self._redis: aioredis.Redis | None = None
        self.scripts: dict[str, AsyncScript] = {}
        self.waiters = Waiters()
        self.inboxes: dict[str, tuple[Callable[[list[ClaimedTask]], None], list[str], str]] = {}
        """Workers of this backend taking handovers: id -> (inbox, queues, registration)."""
        self.inbox_channel = f"{self.prefix}chan:{uuid.uuid4().hex}"
        """This backend's own channel: handovers to its workers are published here."""
        self._subscriber: Subscriber | None = None
        self.lane: Lane | None = None
        """Script calls one at a time skip redis-py's per-command path (``_redis_lane``)."""
        self.tasks = RedisTaskQueue(self)
        self.results = RedisResults(self)
        self.events = RedisEvents(self)
        self.schedules = RedisSchedules(self)

    @property
    def redis(self) -> aioredis.Redis:
        if self._redis is None:
            raise StorageError("RedisBackend is not connected: call connect() or use 'async with'")
        return self._redis

    async def call(self, fn: Callable[[], Awaitable[T]]) -> T:
        """Run one driver call, mapping connection failures to BackendUnavailableError."""
        try:
            return await fn()
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            raise BackendUnavailableError(
                f"redis unreachable at {self._driver_url}: {exc}"
            ) from exc
        except RedisError as exc:
            raise StorageError(f"redis error: {exc}") from exc

    async def connect(self) -> None:
        if self._redis is not None:
            return
        opts: dict[str, Any] = {
            "retry": Retry(ExponentialBackoff(cap=0.5, base=0.02), 6),
            "retry_on_error": [RedisConnectionError, RedisTimeoutError, ConnectionResetError],
            "socket_timeout": 30,
            "health_check_interval": 10,
        }
        opts.update(self._options)
        client = aioredis.from_url(self._driver_url, **opts)
        self._redis = client
        names = {
            "enqueue": lua.ENQUEUE,
            "claim": lua.CLAIM,
            "renew": lua.RENEW,
            "complete": lua.COMPLETE,
            "close_inbox": lua.CLOSE_INBOX,
            "finish": lua.FINISH,
            "results_put": lua.RESULTS_PUT,
            "retry": lua.RETRY,
            "cancel": lua.CANCEL,
            "expire": lua.EXPIRE,
            "reclaim": lua.RECLAIM,
            "purge": lua.PURGE,
            "requeue": lua.REQUEUE,
            "result_purge": lua.RESULT_PURGE,
            "event_purge": lua.EVENT_PURGE,
            "sched_cas": lua.SCHED_CAS,
        }
        self.scripts = {k: client.register_script(v) for k, v in names.items()}
        self.lane = Lane(client)
        try:
            await self.call(client.ping)
            sub = Subscriber(
                client,
                [f"{self.prefix}chan", self.inbox_channel],
                self._notified,
                self.waiters.wake_all,
                health_interval=float(opts["health_check_interval"] or 10),
            )
            await self.call(sub.start)
            self._subscriber = sub
        except BaseException:
            await self.close()
            raise

    def _notified(self, raw: bytes) -> None:
        """One pub/sub message (see ``_redis_lua``): a handover, results, or work."""
        if raw[:2] == b"P:":  # a task handed over to a waiting worker
            self._handover(raw)
            return
        data = _s(raw)
        if data.startswith("R:"):  # a batch of results (see FINISH)
            wake = self.waiters.wake
            for tid in data[2:].split("\x1f"):
                wake("r:" + tid)
        else:
            self.waiters.wake(data)

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
        self.waiters.wake(f"p:{wid}")

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
