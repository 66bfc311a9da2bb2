"""Results, events and schedules of the NATS JetStream backend (see ``_backend``).

Results live in the ``NS_RESULTS`` KV bucket; a bucket's ``max_age`` cannot differ per
result and per-message TTL needs nats-server 2.11, so each result keeps its
``expires_at``: reads filter expired ones and ``purge_expired`` deletes them. Waiters
subscribe to the result's KV subject, so the put itself wakes them. Events are JSON
messages on ``NS.ev.<task>.<type>`` in a limits stream. Schedules live in ``NS_SCHED``;
``claim_due`` advances each due schedule with a revision-checked write.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from omniq.models import EventType, Schedule, ScheduleState, TaskEvent, TaskResult, now
from omniq.storage._corrupt import read_result
from omniq.storage._interfaces import EventStorage, ResultStorage, ScheduleRun, ScheduleStorage
from omniq.storage._remote import (
    EngineStore,
    decode_event,
    decode_schedule,
    encode,
    encode_event,
)
from omniq.storage._wake import wait_for_result

from ._conn import seq_of, subscribe_direct, token
from ._engine import NatsEngine
from ._floor import ScanFloor
from ._records import CorruptRec, decode_rec

if TYPE_CHECKING:
    from nats.aio.msg import Msg

__all__ = ["NatsEvents", "NatsResults", "NatsSchedules"]

T = TypeVar("T")


def _live(m: Msg) -> bool:
    return bool(m.data) and not (m.headers and m.headers.get("KV-Operation"))


class NatsResults(EngineStore[NatsEngine], ResultStorage):
    """Results as KV entries keyed by task id; expiry filtered on read, purged on demand."""

    def __init__(self, be: NatsEngine) -> None:
        super().__init__(be)
        self._floor = ScanFloor(margin=None)

    @property
    def owner(self) -> NatsEngine:
        """The backend these results are stored on."""
        return self._be

    def _key(self, task_id: str) -> str:
        return token(task_id)

    async def put(self, results: Sequence[TaskResult]) -> None:
        writes = self.writes(results)
        await self._call(lambda: self._be.js.publish_many(writes))

    def writes(
        self, results: Sequence[TaskResult], *, create: bool = False
    ) -> list[tuple[str, bytes, dict[str, str] | None]]:
        """The publishes storing ``results`` (checked against the payload limit), for
        ``put`` or to send in a batch with other requests (the task queue's ``finish``).
        ``create``: each only where its key never had an entry (a stored result or its
        tombstone stands; the refused publish answers None)."""
        self.payload_limit.check_results(results)
        for r in results:
            if r.expires_at is not None:
                self._floor.wrote(r.expires_at)
        b = self._be.results_bucket
        hdr = {"Nats-Expected-Last-Subject-Sequence": "0"} if create else None
        return [(f"$KV.{b}.{self._key(r.task_id)}", encode(r), hdr) for r in results]

    async def _get(self, task_id: str) -> TaskResult | None:
        raw, rev = await self._be.js.kv_get(self._be.results_bucket, self._key(task_id))
        if raw is None:
            # Never stored here (no tombstone): a cancel/expiry that died before copying
            # the result out of the task record left it there.
            return None if rev else await self._from_record(task_id)
        res = read_result(raw, task_id)
        if res is None or (res.expires_at is not None and res.expires_at <= now()):
            return None
        return res

    async def _from_record(self, task_id: str) -> TaskResult | None:
        """The result a task record holds (``finish`` writes the worker's with the
        completion, ``cancel``/``expire`` theirs with the state change), while still
        live."""
        raw, rev = await self._be.js.kv_get(self._be.tasks_bucket, token(task_id))
        if raw is None:
            return None
        try:
            res = decode_rec(task_id, raw, rev).stored_result()
        except CorruptRec:
            return None
        if res is None or (res.expires_at is not None and res.expires_at <= now()):
            return None
        return res

    async def get(self, task_ids: Sequence[str]) -> list[TaskResult | None]:
        return list(await self._call(lambda: asyncio.gather(*(self._get(i) for i in task_ids))))

    async def wait(self, task_id: str, timeout: float | None) -> TaskResult | None:  # noqa: ASYNC109
        wake, key = self._be.wake, f"r:{task_id}"

        def cb(_: Msg) -> None:
            wake.notify((key,))

        subject = f"$KV.{self._be.results_bucket}.{self._key(task_id)}"
        sub = await subscribe_direct(self._be.js.nc, subject, cb)
        try:
            # The periodic re-read sees a put whose message was missed during a reconnect.
            return await wait_for_result(
                lambda: self._call(lambda: self._get(task_id)), wake, key, timeout, recheck=5.0
            )
        finally:
            with contextlib.suppress(Exception):  # the connection may be gone already
                await sub.unsubscribe()

    async def delete(self, task_ids: Sequence[str]) -> int:
        js, b = self._be.js, self._be.results_bucket

        async def one(task_id: str) -> int:
            raw, rev = await js.kv_get(b, self._key(task_id))
            if raw is None:
                if rev or await self._from_record(task_id) is None:
                    return 0
                await js.kv_purge(b, self._key(task_id))  # the tombstone hides the record's
                return 1
            await js.kv_purge(b, self._key(task_id))
            res = read_result(raw, task_id)
            return (
                0
                if res is not None and res.expires_at is not None and res.expires_at <= now()
                else 1
            )

        return sum(await self._call(lambda: asyncio.gather(*(one(i) for i in task_ids))))

    async def purge_expired(self) -> int:
        be = self._be
        b = be.results_bucket

        async def run() -> int:
            started = self._floor.start()
            msgs = await be.js.scan(f"KV_{b}", f"$KV.{b}.>", last_per_subject=True)
            t = now()
            doomed = []
            left = math.inf
            for m in msgs:
                if not _live(m):
                    continue
                res = read_result(m.data, m.subject.rsplit(".", 1)[-1])
                if res is None or res.expires_at is None:
                    continue
                if res.expires_at <= t:
                    doomed.append(m.subject.rsplit(".", 1)[-1])
                else:
                    left = min(left, res.expires_at)
            await asyncio.gather(*(be.js.kv_purge(b, k) for k in doomed))
            self._floor.scanned(started, left)
            return len(doomed)

        if self._floor.skip(now()):
            return 0
        return await self._call(run)


class NatsEvents(EngineStore[NatsEngine], EventStorage):
    """Events on a limits stream; queries read a filtered snapshot and sort by time."""

    def _subject(self, task_id: str, type_: str) -> str:
        return f"{self._be.ns}.ev.{token(task_id)}.{token(type_)}"

    async def append(self, events: Sequence[TaskEvent]) -> None:
        js = self._be.js
        await self._call(
            lambda: asyncio.gather(
                *(
                    js.publish(self._subject(e.task_id, EventType(e.type).value), encode_event(e))
                    for e in events
                )
            )
        )

    async def _all(self, task_id: str | None = None) -> list[tuple[int, TaskEvent]]:
        be = self._be
        subject = f"{be.ns}.ev.>" if task_id is None else f"{be.ns}.ev.{token(task_id)}.*"
        msgs = await be.js.scan(be.events_stream, subject, last_per_subject=False)
        out = [(seq_of(m), decode_event(m.data)) for m in msgs]
        out.sort(key=lambda se: (se[1].timestamp, se[1].id))
        return out

    async def query(
        self,
        *,
        task_id: str | None = None,
        types: Sequence[EventType] | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int | None = None,
    ) -> list[TaskEvent]:
        wanted = None if types is None else {EventType(t) for t in types}
        out = []
        for _, e in await self._call(lambda: self._all(task_id)):
            if task_id is not None and e.task_id != task_id:
                continue
            if wanted is not None and e.type not in wanted:
                continue
            if since is not None and e.timestamp < since:
                continue
            if until is not None and e.timestamp >= until:
                continue
            out.append(e)
            if limit is not None and len(out) >= limit:
                break
        return out

    async def purge(self, *, older_than: float | None = None, keep_last: int | None = None) -> int:
        be = self._be

        async def run() -> int:
            all_ = await self._all()
            doomed = set()
            if older_than is not None:
                doomed |= {s for s, e in all_ if e.timestamp < older_than}
            if keep_last is not None:
                doomed |= {s for s, _ in all_[: max(0, len(all_) - keep_last)]}
            await asyncio.gather(
                *(be.js.api(f"STREAM.MSG.DELETE.{be.events_stream}", {"seq": s}) for s in doomed)
            )
            return len(doomed)

        return await self._call(run)

    async def count(self) -> int:
        be = self._be
        info = await self._call(lambda: be.js.api(f"STREAM.INFO.{be.events_stream}"))
        return int(info["state"]["messages"])


class NatsSchedules(EngineStore[NatsEngine], ScheduleStorage):
    """Schedules as KV entries; every change is a revision-checked write."""

    def _key(self, schedule_id: str) -> str:
        return token(schedule_id)

    async def put(self, schedules: Sequence[Schedule]) -> None:
        js, b = self._be.js, self._be.sched_bucket
        await self._call(
            lambda: asyncio.gather(*(js.kv_put(b, self._key(s.id), encode(s)) for s in schedules))
        )

    async def _raw(self, schedule_id: str) -> tuple[Schedule | None, int]:
        raw, rev = await self._be.js.kv_get(self._be.sched_bucket, self._key(schedule_id))
        return (None if raw is None else decode_schedule(raw)), rev

    async def get(self, schedule_id: str) -> Schedule | None:
        return (await self._call(lambda: self._raw(schedule_id)))[0]

    async def _scan(self) -> list[tuple[Schedule, int]]:
        be = self._be
        b = be.sched_bucket
        msgs = await be.js.scan(f"KV_{b}", f"$KV.{b}.>", last_per_subject=True)
        return [(decode_schedule(m.data), seq_of(m)) for m in msgs if _live(m)]

    async def list(self, *, state: ScheduleState | None = None) -> builtins.list[Schedule]:
        found = [s for s, _ in await self._call(self._scan)]
        if state is not None:
            found = [s for s in found if s.state is ScheduleState(state)]
        return sorted(found, key=lambda s: s.id)

    async def delete(self, schedule_id: str) -> bool:
        async def run() -> bool:
            found, _ = await self._raw(schedule_id)
            if found is None:
                return False
            await self._be.js.kv_purge(self._be.sched_bucket, self._key(schedule_id))
            return True

        return await self._call(run)

    async def _cas(self, s: Schedule, rev: int) -> bool:
        js = self._be.js
        return await js.kv_put(self._be.sched_bucket, self._key(s.id), encode(s), rev) is not None

    async def _update(
        self, schedule_id: str, change: Callable[[Schedule], Schedule]
    ) -> Schedule | None:
        async def run() -> Schedule | None:
            while True:
                found, rev = await self._raw(schedule_id)
                if found is None:
                    return None
                new = change(found)
                if await self._cas(new, rev):
                    return new

        return await self._call(run)

    async def pause(self, schedule_id: str) -> Schedule | None:
        return await self._update(schedule_id, lambda s: s.paused())

    async def resume(self, schedule_id: str, *, now: float | None = None) -> Schedule | None:
        return await self._update(schedule_id, lambda s: s.resumed(now))

    async def claim_due(self, now: float, *, limit: int = 100) -> builtins.list[ScheduleRun]:
        async def one(s: Schedule, rev: int) -> ScheduleRun | None:
            cur: Schedule | None = s
            while cur is not None and cur.is_due(now):
                due = cur.next_run_at
                new, fire = cur.advance(now)
                if await self._cas(new, rev):
                    return ScheduleRun(schedule=new, due=due) if fire and due is not None else None
                cur, rev = await self._raw(s.id)
            return None

        async def run() -> builtins.list[ScheduleRun]:
            due = sorted(
                ((s, rev) for s, rev in await self._scan() if s.is_due(now)),
                key=lambda sr: (sr[0].next_run_at or 0.0, sr[0].id),
            )[:limit]
            res: builtins.list[Any] = await asyncio.gather(*(one(s, rev) for s, rev in due))
            return [r for r in res if r is not None]

        return await self._call(run)
