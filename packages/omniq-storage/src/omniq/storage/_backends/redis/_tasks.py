"""The task queue of the Redis backend (see ``_backend``): each operation is one Lua
script (``lua/``), sent on the backend's lane (through the pool when the lane misses)."""

from __future__ import annotations

import heapq
import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import msgspec

from omniq.models import (
    ClaimedTask,
    CorruptRecordError,
    ErrorInfo,
    LimitInfo,
    Task,
    TaskCancelledError,
    TaskExpiredError,
    TaskResult,
    TaskStatus,
    limit_of,
    now,
)
from omniq.storage._corrupt import CORRUPT_FUNC, Corrupt, quarantine, read_task, try_task
from omniq.storage._interfaces import (
    CASCADE_REASON,
    Completion,
    CompletionReport,
    DependencyPolicy,
    LeaseRef,
    ResultRecord,
    ResultStorage,
    RetryRequest,
    TaskQueueStorage,
    cascades,
)
from omniq.storage._limits import chunks
from omniq.storage._remote import HANDOVER_REGISTRATION, claimed, encode, with_state, with_state_eta

from ._control import RedisTaskControl
from ._engine import RedisStore, as_float, as_str, opt, opt_repr
from ._flow import LIMITS_FREED, lim_field, limit_infos
from ._lane import LaneMissed
from ._unique import replace_holders, window_end

__all__ = ["RedisTaskQueue"]

_list = list
_HANDS_OVER = frozenset(("enqueue", "enqueue_one"))
_tasks_decoder = msgspec.msgpack.Decoder(list[Task])


def _decode_tasks(blob: bytes, sizes: Sequence[int]) -> list[Task | CorruptRecordError]:
    """The claimed envelopes, sent by the claim script as one msgpack array of
    ``sizes``-long items: decoded in one pass, or one by one when that fails."""
    try:
        return _list(_tasks_decoder.decode(blob))
    except (msgspec.DecodeError, TypeError, ValueError, OverflowError):
        pass
    pos = len(blob) - sum(sizes)  # past the array header
    out: list[Task | CorruptRecordError] = []
    for n in sizes:
        out.append(try_task(blob[pos : pos + n]))
        pos += n
    return out


def _read(task_id: str, row: Sequence[Any], *, always: bool) -> Task | None:
    """A task from its hash fields (envelope, status, attempt, eta, queue); a corrupt
    envelope reads as a stand-in or None (``_corrupt.read_task``)."""
    status, attempt = as_str(row[1]), int(row[2])
    task = read_task(row[0], task_id, as_str(row[4]) or None, status, attempt, always=always)
    if task is None or task.func == CORRUPT_FUNC:
        return task
    return with_state_eta(task, status, attempt, as_float(row[3]))


def _plain(task: Task) -> bool:
    """A task ``enqueue_one`` stores as ``enqueue`` would: no dependencies (so it is
    never stored cancelled), idempotency key, flow limit or run condition."""
    return (
        not task.depends_on
        and task.key is None
        and task.run_if is None
        and task.on_conflict is None
        and limit_of(task) is None
    )


def _cancelled(task_id: str, env: bytes, attempt: int) -> Task:
    """A dependent the script cancelled (a stand-in if its envelope is corrupt)."""
    task = read_task(env, task_id, None, TaskStatus.CANCELLED, attempt)
    assert task is not None  # cancelled is terminal: never skipped
    return with_state(task, TaskStatus.CANCELLED, attempt)


def _ended_spec(record: ResultRecord, status: TaskStatus) -> bytes:
    """What ``lua/_ended.lua`` needs to build the results ``record.result`` would (the
    expiry's message is built there, from the task's stored ``exp``)."""
    if status is TaskStatus.EXPIRED:
        root = ErrorInfo.from_exception(TaskExpiredError(""))
        message = ""
    else:
        root = ErrorInfo.from_exception(TaskCancelledError(record.reason))
        message = root.message
    cascade = ErrorInfo.from_exception(TaskCancelledError(CASCADE_REASON))
    keep = record.retention
    return encode(
        [
            status.value,
            root.type,
            message,
            cascade.type,
            cascade.message,
            "" if keep is None else repr(float(keep)),
            "" if keep is None else max(1, math.ceil(keep * 1000)),
            1 if status is TaskStatus.EXPIRED else 0,
        ]
    )


class RedisTaskQueue(RedisTaskControl, RedisStore, TaskQueueStorage):
    """Task queue on sorted sets and hashes; each operation is one Lua script."""

    async def _script(self, name: str, *args: Any) -> Any:
        be = self._be
        script = be.scripts[name]
        full = [self._p, repr(now()), *args]
        lane = be.lane
        if lane is not None:
            wake = name in _HANDS_OVER  # it may hand the task over to a waiting worker
            try:
                return await be.call(lambda: lane.evalsha(script.sha, full, wake_first=wake))
            except LaneMissed:
                pass
        return await self._call(lambda: script(args=full))

    enqueue_chunk = 500
    """Most tasks one enqueue script stores: a script holds the whole server while it
    runs, so a large batch goes as several short scripts."""
    enqueue_chunk_bytes = 1 << 20
    """Most envelope bytes one enqueue script carries (a larger task goes alone)."""

    async def enqueue(
        self,
        tasks: Sequence[Task],
        *,
        dependency_policy: DependencyPolicy = "cancel",
        record: ResultRecord | None = None,
    ) -> list[Task]:
        """``enqueue``; with ``record`` (``enqueue_with_results``), a task stored already
        cancelled gets its result in the enqueue script when the results live in this
        Redis (``lua/_ended.lua``), else right after it."""
        if not tasks:
            return []
        self.payload_limit.check_tasks(tasks)
        if record is None and len(tasks) == 1 and _plain(tasks[0]):
            return [await self._enqueue_one(tasks[0])]
        spec = None
        if (
            record is not None
            and record.result_store is self._be.results
            and dependency_policy == "cancel"
            and any(t.depends_on and t.run_if is None for t in tasks)
        ):
            spec = _ended_spec(record, TaskStatus.CANCELLED)
        envs = [encode(t) for t in tasks]
        out: list[Task] = []
        for a, b in chunks(
            envs,
            [len(e) for e in envs],
            max_count=self.enqueue_chunk,
            max_bytes=self.enqueue_chunk_bytes,
        ):
            out += await self._enqueue(tasks[a:b], envs[a:b], dependency_policy, spec)
        if record is not None and record.result_store is not self._be.results:
            await self.record_born_cancelled(tasks, out, record)
        return out

    async def enqueue_with_results(
        self,
        tasks: Sequence[Task],
        record: ResultRecord,
        *,
        dependency_policy: DependencyPolicy = "cancel",
    ) -> list[Task]:
        return await self.enqueue(tasks, dependency_policy=dependency_policy, record=record)

    async def _enqueue_one(self, task: Task) -> Task:
        """One plain task (``_plain``) through the lean ``enqueue_one`` script: the
        same writes as ``enqueue`` would make for it."""
        row = await self._script(
            "enqueue_one",
            task.id,
            task.queue,
            task.priority,
            opt_repr(task.eta),
            opt_repr(task.expires_at),
            encode(task),
        )
        if len(row) == 2:
            return with_state(task, as_str(row[1]), 0)
        stored = _read(as_str(row[0]), [row[3], row[1], row[2], row[4], task.queue], always=True)
        assert stored is not None  # always=True: a stand-in, never None
        return stored

    async def _enqueue(
        self,
        tasks: Sequence[Task],
        envs: Sequence[bytes],
        dependency_policy: DependencyPolicy,
        spec: bytes | None = None,
    ) -> list[Task]:
        """One enqueue script: atomic for its tasks (and, with ``spec``, the results of
        those it stores already cancelled)."""
        meta = encode(
            [
                [
                    t.id,
                    t.queue,
                    t.priority,
                    opt_repr(t.eta),
                    opt_repr(t.expires_at),
                    t.key or "",
                    list(t.depends_on),
                    len(env),
                    lim_field(t),
                    1 if t.run_if is not None else 0,  # a conditional dependent
                    window_end(t),
                ]
                for t, env in zip(tasks, envs, strict=True)
            ]
        )
        args: tuple[Any, ...] = (dependency_policy, meta, b"".join(envs))
        if spec is not None:
            args = (*args, spec)
        rows = await self._script("enqueue", *args)
        out: list[Task] = []
        for t, row in zip(tasks, rows, strict=True):
            if len(row) == 2:
                out.append(with_state(t, as_str(row[1]), 0))
            else:
                fields = [row[3], row[1], row[2], row[4], t.queue]
                stored = _read(as_str(row[0]), fields, always=True)
                assert stored is not None  # always=True: a stand-in, never None
                out.append(stored)
        if any(t.on_conflict is not None for t in tasks):
            await replace_holders(tasks, out, self._script, self.get_one)
        return out

    async def claim(
        self, queues: Sequence[str], worker_id: str, *, limit: int = 1, lease: float = 30.0
    ) -> list[ClaimedTask]:
        if limit <= 0 or not queues:
            return []
        until = now() + lease
        sent = time.time()
        blob, meta, held, wait, stamp = await self._script(
            "claim", worker_id, repr(until), limit, *queues
        )
        self.limited = sorted(as_str(k) for k in held)
        self.limited_wait = float(wait) if wait else None
        self.admitted = self._admitted(sent, float(stamp)) if stamp else None
        out = []
        bad: list[Corrupt] = []
        for i, stored in enumerate(_decode_tasks(blob, meta[3::4])):
            tok, attempt, eta = as_str(meta[4 * i]), int(meta[4 * i + 1]), meta[4 * i + 2]
            if isinstance(stored, Task):
                task = with_state_eta(stored, TaskStatus.RUNNING, attempt, as_float(eta))
                out.append(claimed(task, tok, until, worker_id))
            else:  # the token is "<id>:<generation>"
                bad.append(Corrupt(tok.rpartition(":")[0], tok, str(stored), attempt))
        await quarantine(self, self._be.results, bad, lease=lease)
        return out

    async def claim_standby(
        self, queues: Sequence[str], worker_id: str, *, behind: ClaimedTask, lease: float = 30.0
    ) -> ClaimedTask | None:
        """A task to run in the concurrency slot of ``behind`` (a running claim of this
        worker under a cap without a rate) once that run ended, claimed now so it
        starts without a round trip: the key's first ready task, leased with the
        claim's token beside it (``lua/standby.lua``), so while both run in the store
        they take one slot. The caller renews its lease until it runs it, and releases
        it when it will not. None when no task of that key is ready, or ``behind`` has
        ended or has a standby already."""
        if not queues:
            return None
        until = now() + lease
        got = await self._script(
            "standby", worker_id, repr(until), behind.task.id, behind.token, *queues
        )
        if not got:
            return None
        env, tok, attempt, eta = got
        tok = as_str(tok)
        stored = try_task(env)
        if not isinstance(stored, Task):  # the token is "<id>:<generation>"
            bad = Corrupt(tok.rpartition(":")[0], tok, str(stored), int(attempt))
            await quarantine(self, self._be.results, [bad], lease=lease)
            return None
        task = with_state_eta(stored, TaskStatus.RUNNING, int(attempt), as_float(eta))
        return claimed(task, tok, until, worker_id)

    async def renew(self, leases: Sequence[LeaseRef], lease: float) -> list[str]:
        if not leases:
            return []
        args: list[Any] = [repr(now() + lease)]
        for ref in leases:
            args += [ref.task_id, ref.token]
        return [as_str(x) for x in await self._script("renew", *args)]

    @staticmethod
    def _report(res: Any) -> CompletionReport:
        done, stale, released, cancelled = res
        return CompletionReport(
            done=[as_str(x) for x in done],
            stale=[as_str(x) for x in stale],
            released=[as_str(x) for x in released],
            cancelled=[_cancelled(as_str(tid), env, int(a)) for tid, a, env in cancelled],
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

    async def complete_with_results(
        self,
        completions: Sequence[Completion],
        record: ResultRecord,
        *,
        dependency_policy: DependencyPolicy = "cancel",
    ) -> CompletionReport:
        """The complete script also stores the cascade's results when they live in this
        Redis."""
        if record.result_store is not self._be.results:
            return await super().complete_with_results(
                completions, record, dependency_policy=dependency_policy
            )
        if not completions:
            return CompletionReport()
        flat: list[Any] = []
        for c in completions:
            flat += (c.task_id, c.token, c.status)
        spec = _ended_spec(record, TaskStatus.CANCELLED)
        res = await self._script("complete", dependency_policy, encode(flat), spec)
        return self._report(res)

    async def finish(
        self,
        completions: Sequence[Completion],
        results: Sequence[TaskResult],
        result_store: ResultStorage | None,
        *,
        lease: float,
        dependency_policy: DependencyPolicy = "cancel",
        record: ResultRecord | None = None,
    ) -> CompletionReport:
        """Results and completions in one script when the results live in this Redis:
        the lease check fences both, atomically, in one round trip (and, with
        ``record``, the cascade's results too, ``lua/_ended.lua``)."""
        if result_store is not None:
            result_store.payload_limit.check_results(results)
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
                record=record,
            )
        if not completions:
            return CompletionReport()
        spec: Any = ()
        if record is not None and cascades(completions, dependency_policy):
            if record.result_store is not self._be.results:
                return await super().finish(
                    completions,
                    results,
                    result_store,
                    lease=lease,
                    dependency_policy=dependency_policy,
                    record=record,
                )
            spec = (_ended_spec(record, TaskStatus.CANCELLED),)
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
        res = await self._script("finish", dependency_policy, encode(flat), b"".join(blobs), *spec)
        return self._report(res)

    async def retry(self, requests: Sequence[RetryRequest]) -> list[str]:
        if not requests:
            return []
        args: list[Any] = ["0"]
        for r in requests:
            args += [r.task_id, r.token, opt(r.eta)]
        return [as_str(x) for x in await self._script("retry", *args)]

    async def defer(self, requests: Sequence[RetryRequest]) -> list[str]:
        if not requests:
            return []
        args: list[Any] = ["1"]
        for r in requests:
            args += [r.task_id, r.token, opt(r.eta)]
        return [as_str(x) for x in await self._script("retry", *args)]

    async def release(self, leases: Sequence[LeaseRef]) -> list[str]:
        if not leases:
            return []
        args: list[Any] = ["1"]
        for ref in leases:
            args += [ref.task_id, ref.token, ""]
        return [as_str(x) for x in await self._script("retry", *args)]

    async def cancel(
        self, task_ids: Sequence[str], *, dependency_policy: DependencyPolicy = "cancel"
    ) -> CompletionReport:
        if not task_ids:
            return CompletionReport()
        return self._report(await self._script("cancel", dependency_policy, "", *task_ids))

    async def cancel_with_results(
        self,
        task_ids: Sequence[str],
        record: ResultRecord,
        *,
        dependency_policy: DependencyPolicy = "cancel",
    ) -> CompletionReport:
        """The cancel script also stores the results when they live in this Redis."""
        if record.result_store is not self._be.results:
            return await super().cancel_with_results(
                task_ids, record, dependency_policy=dependency_policy
            )
        if not task_ids:
            return CompletionReport()
        spec = _ended_spec(record, TaskStatus.CANCELLED)
        return self._report(await self._script("cancel", dependency_policy, spec, *task_ids))

    async def expire_with_results(
        self, record: ResultRecord, *, dependency_policy: DependencyPolicy = "cancel"
    ) -> CompletionReport:
        """The expiry script also stores the results when they live in this Redis."""
        if record.result_store is not self._be.results:
            return await super().expire_with_results(record, dependency_policy=dependency_policy)
        spec = _ended_spec(record, TaskStatus.EXPIRED)
        return self._report(await self._script("expire", dependency_policy, spec))

    limited: list[str] = []
    """The limit keys the last claim held tasks back for."""
    limited_wait: float | None = None
    """Seconds until the first rate-held key of the last claim has budget again (None:
    no task was held back by its rate)."""

    admitted: float | None = None
    """When the last claim counted its rate-limited starts, as a ``time.monotonic()``
    value no later than the true one (None: it counted none)."""
    _skew = math.inf
    """The least ``server stamp - local time sent`` seen: the server clock is at most
    this far ahead of this process's (each sample bounds it from above)."""

    def _admitted(self, sent: float, stamp: float) -> float:
        self._skew = min(self._skew, stamp - sent)
        return stamp - self._skew - (time.time() - time.monotonic())

    async def limits_freed(self, queues: Sequence[str]) -> None:
        """Tell the workers pausing for held work on ``queues`` that concurrency slots
        freed (published on the prefix's channel)."""
        r = self._be.redis
        p = self._p

        async def publish() -> None:
            pipe = r.pipeline(transaction=False)
            for q in dict.fromkeys(queues):
                pipe.publish(f"{p}chan", f"{LIMITS_FREED}{q}")
            await pipe.execute()

        await self._call(publish)

    async def wait_for_limits(self, queues: Sequence[str], timeout: float) -> bool:  # noqa: ASYNC109
        """Until ``limits_freed`` names one of ``queues`` (True) or ``timeout`` passes."""
        with self._be.wake.watch([f"{LIMITS_FREED}{q}" for q in queues]) as watch:
            return await watch.wait(timeout)

    async def list_limits(self) -> list[LimitInfo]:
        return limit_infos(await self._script("limits"))

    unique_sweep_every = 10.0
    """Seconds between two sweeps of ended unique-job windows by ``maintain`` (per
    process; the first call sweeps)."""
    _unique_sweep_at = 0.0

    async def maintain(self) -> None:
        """Drop the keys whose ``unique_for`` window ended after their holder did."""
        t = time.monotonic()
        if t < self._unique_sweep_at:
            return
        self._unique_sweep_at = t + self.unique_sweep_every
        await self._script("unique_sweep")

    async def reclaim_expired(self) -> list[str]:
        return [as_str(x) for x in await self._script("reclaim")]

    async def expire(self, *, dependency_policy: DependencyPolicy = "cancel") -> CompletionReport:
        return self._report(await self._script("expire", dependency_policy, ""))

    async def get(self, task_ids: Sequence[str]) -> list[Task | None]:
        if not task_ids:
            return []
        r = self._be.redis

        async def run() -> list[Any]:
            pipe = r.pipeline(transaction=False)
            for tid in task_ids:
                pipe.hmget(f"{self._p}t:{tid}", "d", "s", "a", "eta", "q")
            return await pipe.execute()

        rows = await self._call(run)
        return [
            None if row[0] is None else _read(tid, row, always=False)
            for tid, row in zip(task_ids, rows, strict=True)
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
        return [self._key(as_str(q), status) for q in sorted(queues)]

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
        return [t for t in await self.get([as_str(i) for i in ids]) if t is not None]

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
        queues = sorted(as_str(q) for q in await self._call(lambda: r.smembers(f"{self._p}queues")))

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
        return [as_str(x) for x in await self._script("requeue", *ids)]

    async def pause_queue(self, queue: str) -> bool:
        return int(await self._script("queue_pause", queue)) == 1

    async def resume_queue(self, queue: str) -> bool:
        return int(await self._script("queue_resume", queue)) == 1

    async def paused_queues(self) -> _list[str]:
        found = await self._call(lambda: self._be.redis.smembers(f"{self._p}paused"))
        return sorted(as_str(q) for q in found)

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
        HANDOVER_REGISTRATION seconds, so a worker that died stops getting handovers soon) in the
        same round trip as the probe; ENQUEUE hands it a task ready now in an empty
        queue, published to this backend's listener, which calls ``inbox``."""
        member = "\x1f".join([worker_id, repr(lease), self._be.inbox_channel, *queues])
        self._be.inboxes[worker_id] = (inbox, list(queues), member)
        return await self._wait(queues, min(timeout, HANDOVER_REGISTRATION), (worker_id, member))

    async def close_inbox(self, worker_id: str) -> _list[str]:
        entry = self._be.inboxes.pop(worker_id, None)
        if entry is None:
            return []
        _, queues, member = entry
        return [as_str(x) for x in await self._script("close_inbox", worker_id, member, *queues)]

    async def _wait(
        self,
        queues: Sequence[str],
        timeout: float,  # noqa: ASYNC109
        idle: tuple[str, str] | None,
    ) -> bool:
        """Probe, then wait for a notification. ``idle`` (worker id, registration member;
        see ``lua/enqueue.lua``): register the worker as idle on ``queues`` in the probe's round
        trip, and wake for a handover to it too."""
        keys = [f"w:{q}" for q in queues]
        member = None
        if idle is not None:
            worker_id, member = idle
            keys.append(f"p:{worker_id}")
        with self._be.wake.watch(keys) as watch:
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
                pipe.smembers(f"{p}paused")
                return await pipe.execute()

            res = await self._call(probe)
            if member is not None:
                res = res[1 + len(queues) :]
            paused = {as_str(q) for q in res[-1]}
            t = now()
            wake_at = t + timeout
            for i, q in enumerate(queues):
                if q in paused:  # nothing of it can be claimed: RESUME wakes this wait
                    continue
                if int(res[3 * i]):
                    return True
                for nxt in (res[3 * i + 1], res[3 * i + 2]):
                    if nxt:
                        wake_at = min(wake_at, float(nxt[0][1]))
            if wake_at <= t:
                return True
            if await watch.wait(wake_at - t):
                return True
            return wake_at < t + timeout
