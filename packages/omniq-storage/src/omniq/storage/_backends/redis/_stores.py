"""Results, events and schedules of the Redis backend (see ``_backend``)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, TypeVar, cast

from omniq.models import (
    EventType,
    Schedule,
    ScheduleState,
    TaskEvent,
    TaskResult,
    now,
)
from omniq.storage._corrupt import read_result
from omniq.storage._interfaces import (
    EventStorage,
    ResultStorage,
    ScheduleRun,
    ScheduleStorage,
)
from omniq.storage._remote import (
    decode_event,
    decode_schedule,
    encode,
    encode_event,
)
from omniq.storage._wake import wait_for_result

from ._engine import RedisStore, as_str, opt

__all__ = ["RedisEvents", "RedisResults", "RedisSchedules"]

T = TypeVar("T")
_list = list


class RedisResults(RedisStore, ResultStorage):
    """Results as plain keys with a PX expiry; ``rexp`` tracks them for purge counts."""

    async def put(self, results: Sequence[TaskResult]) -> None:
        if not results:
            return
        self.payload_limit.check_results(results)
        t = now()
        flat: list[Any] = []
        blobs: list[bytes] = []
        for res in results:
            blob = encode(res)
            blobs.append(blob)
            exp = res.expires_at
            if exp is None:
                flat += (res.task_id, len(blob), "", "")
            else:
                flat += (res.task_id, len(blob), max(1, math.ceil((exp - t) * 1000)), repr(exp))
        script = self._be.scripts["results_put"]
        args: list[Any] = [self._p, repr(t), encode(flat), b"".join(blobs)]
        await self._call(lambda: script(args=args))

    async def get(self, task_ids: Sequence[str]) -> list[TaskResult | None]:
        if not task_ids:
            return []
        keys = [f"{self._p}res:{i}" for i in task_ids]
        raw = await self._call(lambda: self._be.redis.mget(keys))
        t = now()
        out: list[TaskResult | None] = []
        for tid, v in zip(task_ids, raw, strict=True):
            res = None if v is None else read_result(cast(bytes, v), tid)
            if res is not None and res.expires_at is not None and res.expires_at <= t:
                res = None
            out.append(res)
        return out

    async def wait(self, task_id: str, timeout: float | None) -> TaskResult | None:  # noqa: ASYNC109
        return await wait_for_result(
            lambda: self.get_one(task_id), self._be.wake, f"r:{task_id}", timeout
        )

    async def delete(self, task_ids: Sequence[str]) -> int:
        if not task_ids:
            return 0
        r = self._be.redis

        async def run() -> int:
            pipe = r.pipeline(transaction=True)
            pipe.delete(*[f"{self._p}res:{i}" for i in task_ids])
            pipe.zrem(f"{self._p}rexp", *task_ids)
            return int((await pipe.execute())[0])

        return await self._call(run)

    async def purge_expired(self) -> int:
        script = self._be.scripts["result_purge"]
        return int(await self._call(lambda: script(args=[self._p, repr(now())])))


class RedisEvents(RedisStore, EventStorage):
    """Events: msgpack by id in a hash, ordered by a timestamp zset (ties by id)."""

    async def append(self, events: Sequence[TaskEvent]) -> None:
        if not events:
            return
        r = self._be.redis

        async def run() -> None:
            pipe = r.pipeline(transaction=True)
            pipe.hset(f"{self._p}evd", mapping={e.id: encode_event(e) for e in events})
            pipe.hset(f"{self._p}evt", mapping={e.id: e.task_id for e in events})
            pipe.zadd(f"{self._p}ev", {e.id: e.timestamp for e in events})
            for e in events:
                pipe.zadd(f"{self._p}evk:{e.task_id}", {e.id: e.timestamp})
            await pipe.execute()

        await self._call(run)

    async def query(
        self,
        *,
        task_id: str | None = None,
        types: Sequence[EventType] | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int | None = None,
    ) -> list[TaskEvent]:
        r = self._be.redis
        key = f"{self._p}evk:{task_id}" if task_id is not None else f"{self._p}ev"
        lo = "-inf" if since is None else repr(since)
        hi = "+inf" if until is None else f"({until!r}"
        wanted = None if types is None else {EventType(t) for t in types}
        out: list[TaskEvent] = []
        start, page = 0, 500
        while limit is None or len(out) < limit:
            ids = await self._call(lambda s=start: r.zrangebyscore(key, lo, hi, start=s, num=page))
            if not ids:
                break
            raw = await self._call(lambda ids=ids: r.hmget(f"{self._p}evd", ids))
            for v in raw:
                if v is None:
                    continue
                ev = decode_event(v)
                if wanted is None or ev.type in wanted:
                    out.append(ev)
            start += page
            if len(ids) < page:
                break
        out.sort(key=lambda e: (e.timestamp, e.id))
        return out if limit is None else out[:limit]

    async def purge(self, *, older_than: float | None = None, keep_last: int | None = None) -> int:
        script = self._be.scripts["event_purge"]
        args = [self._p, repr(now()), opt(older_than), "" if keep_last is None else keep_last]
        return int(await self._call(lambda: script(args=args)))

    async def count(self) -> int:
        return int(await self._call(lambda: self._be.redis.zcard(f"{self._p}ev")))


class RedisSchedules(RedisStore, ScheduleStorage):
    """Schedules as msgpack in a hash; due ones in a zset. Claims are compare-and-set
    Lua calls on the stored bytes, so one run goes to exactly one scheduler."""

    def _due(self, s: Schedule) -> str | float:
        if s.state is ScheduleState.ACTIVE and s.next_run_at is not None:
            return s.next_run_at
        return ""

    async def put(self, schedules: Sequence[Schedule]) -> None:
        if not schedules:
            return
        r = self._be.redis

        async def run() -> None:
            pipe = r.pipeline(transaction=True)
            pipe.hset(f"{self._p}sch", mapping={s.id: encode(s) for s in schedules})
            for s in schedules:
                due = self._due(s)
                if due == "":
                    pipe.zrem(f"{self._p}sdue", s.id)
                else:
                    pipe.zadd(f"{self._p}sdue", {s.id: due})
            await pipe.execute()

        await self._call(run)

    async def _raw(self, schedule_id: str) -> bytes | None:
        return cast(
            "bytes | None",
            await self._call(lambda: self._be.redis.hget(f"{self._p}sch", schedule_id)),
        )

    async def get(self, schedule_id: str) -> Schedule | None:
        raw = await self._raw(schedule_id)
        return None if raw is None else decode_schedule(raw)

    async def list(self, *, state: ScheduleState | None = None) -> _list[Schedule]:
        raw = await self._call(lambda: self._be.redis.hvals(f"{self._p}sch"))
        out = [decode_schedule(cast(bytes, v)) for v in raw]
        if state is not None:
            out = [s for s in out if s.state is ScheduleState(state)]
        return sorted(out, key=lambda s: s.id)

    async def delete(self, schedule_id: str) -> bool:
        r = self._be.redis

        async def run() -> int:
            pipe = r.pipeline(transaction=True)
            pipe.hdel(f"{self._p}sch", schedule_id)
            pipe.zrem(f"{self._p}sdue", schedule_id)
            return int((await pipe.execute())[0])

        return bool(await self._call(run))

    async def _cas(self, schedule_id: str, old: bytes, new: Schedule) -> bool:
        script = self._be.scripts["sched_cas"]
        args = [self._p, repr(now()), schedule_id, old, encode(new), self._due(new)]
        return bool(await self._call(lambda: script(args=args)))

    async def _update(
        self, schedule_id: str, change: Callable[[Schedule], Schedule]
    ) -> Schedule | None:
        while True:
            raw = await self._raw(schedule_id)
            if raw is None:
                return None
            new = change(decode_schedule(raw))
            if await self._cas(schedule_id, raw, new):
                return new

    async def pause(self, schedule_id: str) -> Schedule | None:
        return await self._update(schedule_id, lambda s: s.paused())

    async def resume(self, schedule_id: str, *, now: float | None = None) -> Schedule | None:
        return await self._update(schedule_id, lambda s: s.resumed(now))

    async def claim_due(self, now: float, *, limit: int = 100) -> _list[ScheduleRun]:
        r = self._be.redis
        ids = await self._call(
            lambda: r.zrangebyscore(f"{self._p}sdue", "-inf", repr(now), start=0, num=limit)
        )
        runs: list[ScheduleRun] = []
        for sid in ids:
            sid_s = as_str(sid)
            while True:
                raw = await self._raw(sid_s)
                if raw is None:
                    break
                sched = decode_schedule(raw)
                if not sched.is_due(now):
                    break
                due = sched.next_run_at
                new, fire = sched.advance(now)
                if await self._cas(sid_s, raw, new):
                    if fire and due is not None:
                        runs.append(ScheduleRun(schedule=new, due=due))
                    break
        return runs
