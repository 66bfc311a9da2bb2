"""Results, events and schedules of the PostgreSQL backend (see ``_backend``)."""

from __future__ import annotations

import builtins
import copy
from collections.abc import Callable, Sequence
from typing import Any, TypeVar, cast

import msgspec

from omniq.models import (
    EventType,
    Schedule,
    ScheduleState,
    TaskEvent,
    TaskResult,
    TaskStatus,
    now,
)
from omniq.storage._corrupt import read_result
from omniq.storage._interfaces import (
    EventStorage,
    ResultStorage,
    ScheduleRun,
    ScheduleStorage,
    TaskQueueStorage,
)
from omniq.storage._remote import EngineStore, decode_schedule, encode
from omniq.storage._wake import wait_for_result

from ._caller import CallerEngine, caller_connection
from ._engine import PgEngine
from ._sql import QUERIES as _Q

__all__ = ["PgEvents", "PgResults", "PgSchedules"]

T = TypeVar("T")
_json = msgspec.json.Encoder()


class PgResults(EngineStore[PgEngine], ResultStorage):
    """Results table; ``put`` notifies the result channel with the task id."""

    async def put(self, results: Sequence[TaskResult]) -> None:
        if not results:
            return
        self.payload_limit.check_results(results)
        args = (
            [r.task_id for r in results],
            [TaskStatus(r.status).value for r in results],
            [r.expires_at for r in results],
            [encode(r) for r in results],
            self._be.result_channel,
        )
        await self._call(lambda c: c.fetchval(_Q["result_put"], *args))

    async def get(self, task_ids: Sequence[str]) -> builtins.list[TaskResult | None]:
        if not task_ids:
            return []
        ids = builtins.list(task_ids)
        rows = await self._call(lambda c: c.fetch(_Q["result_get"], ids, now()))
        by_id = {r["task_id"]: read_result(r["envelope"], r["task_id"]) for r in rows}
        return [by_id.get(i) for i in ids]

    async def wait(self, task_id: str, timeout: float | None) -> TaskResult | None:  # noqa: ASYNC109
        return await wait_for_result(
            lambda: self.get_one(task_id),
            self._be.result_wake,
            task_id,
            timeout,
            recheck=self._be.poll_interval,
        )

    async def delete(self, task_ids: Sequence[str]) -> int:
        ids = builtins.list(task_ids)
        return int(await self._call(lambda c: c.fetchval(_Q["result_delete"], ids)))

    async def purge_expired(self) -> int:
        return int(await self._call(lambda c: c.fetchval(_Q["result_purge"], now())))


class PgEvents(EngineStore[PgEngine], EventStorage):
    """Events as plain columns with JSONB metadata, queryable with SQL."""

    async def append_in_transaction(
        self, connection: object, events: Sequence[TaskEvent], *, tasks: TaskQueueStorage
    ) -> bool:
        if getattr(tasks, "_be", None) is not self._be:
            return False  # the tasks live in another backend's store
        bound = copy.copy(self)
        bound._be = cast(PgEngine, CallerEngine(self._be, caller_connection(connection)))
        await bound.append(events)
        return True

    async def append(self, events: Sequence[TaskEvent]) -> None:
        if not events:
            return
        args = (
            [e.id for e in events],
            [e.task_id for e in events],
            [EventType(e.type).value for e in events],
            [e.timestamp for e in events],
            [e.worker_id for e in events],
            [e.queue for e in events],
            [_json.encode(e.metadata).decode() for e in events],
        )
        await self._call(lambda c: c.execute(_Q["event_append"], *args))

    async def query(
        self,
        *,
        task_id: str | None = None,
        types: Sequence[EventType] | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int | None = None,
    ) -> builtins.list[TaskEvent]:
        conds: builtins.list[str] = []
        args: builtins.list[Any] = []
        for cond, val in (
            ("task_id = ${}", task_id),
            (
                "type = ANY(${}::text[])",
                None if types is None else [EventType(t).value for t in types],
            ),
            ("ts >= ${}", since),
            ("ts < ${}", until),
        ):
            if val is not None:
                args.append(val)
                conds.append(cond.format(len(args)))
        q = "SELECT id, task_id, type, ts, worker_id, queue, metadata::text AS md FROM events"
        if conds:
            q += " WHERE " + " AND ".join(conds)
        q += " ORDER BY ts, id"
        if limit is not None:
            args.append(limit)
            q += f" LIMIT ${len(args)}"
        rows = await self._call(lambda c: c.fetch(q, *args))
        return [
            TaskEvent(
                task_id=r["task_id"],
                type=EventType(r["type"]),
                id=r["id"],
                timestamp=r["ts"],
                worker_id=r["worker_id"],
                queue=r["queue"],
                metadata=msgspec.json.decode(r["md"]),
            )
            for r in rows
        ]

    async def purge(self, *, older_than: float | None = None, keep_last: int | None = None) -> int:
        conds: builtins.list[str] = []
        args: builtins.list[Any] = []
        if older_than is not None:
            args.append(older_than)
            conds.append(f"ts < ${len(args)}")
        if keep_last is not None:
            args.append(keep_last)
            conds.append(
                f"id IN (SELECT id FROM events ORDER BY ts DESC, id DESC OFFSET ${len(args)})"
            )
        if not conds:
            return 0
        where = " OR ".join(conds)
        q = f"WITH d AS (DELETE FROM events WHERE {where} RETURNING 1) SELECT count(*) FROM d"
        return int(await self._call(lambda c: c.fetchval(q, *args)))

    async def count(self) -> int:
        return int(await self._call(lambda c: c.fetchval(_Q["event_count"])))


_SET_ROW = _Q["schedule_set"]


class PgSchedules(EngineStore[PgEngine], ScheduleStorage):
    """Schedules; ``claim_due`` locks due rows (SKIP LOCKED) and advances them in one
    transaction, so each run is claimed once across schedulers."""

    @staticmethod
    def _row(s: Schedule) -> tuple[str, str, float | None, bytes]:
        return (s.id, ScheduleState(s.state).value, s.next_run_at, encode(s))

    _UPSERT = _Q["schedule_upsert"]

    async def put(self, schedules: Sequence[Schedule]) -> None:
        if not schedules:
            return
        rows = [self._row(s) for s in schedules]
        cols = [builtins.list(c) for c in zip(*rows, strict=True)]
        await self._call(lambda c: c.execute(self._UPSERT, *cols))

    async def get(self, schedule_id: str) -> Schedule | None:
        raw = await self._call(lambda c: c.fetchval(_Q["schedule_get"], schedule_id))
        return None if raw is None else decode_schedule(raw)

    async def list(self, *, state: ScheduleState | None = None) -> builtins.list[Schedule]:
        if state is None:
            rows = await self._call(lambda c: c.fetch(_Q["schedule_list"]))
        else:
            st = ScheduleState(state).value
            rows = await self._call(lambda c: c.fetch(_Q["schedule_list_state"], st))
        return [decode_schedule(r[0]) for r in rows]

    async def delete(self, schedule_id: str) -> bool:
        n = await self._call(lambda c: c.fetchval(_Q["schedule_delete"], schedule_id))
        return bool(n)

    async def _update(
        self, schedule_id: str, change: Callable[[Schedule], Schedule]
    ) -> Schedule | None:
        async def run(c: Any) -> Schedule | None:
            async with c.transaction():
                raw = await c.fetchval(_Q["schedule_lock"], schedule_id)
                if raw is None:
                    return None
                new = change(decode_schedule(raw))
                await c.execute(
                    _SET_ROW,
                    *self._row(new),
                )
                return new

        return await self._call(run)

    async def pause(self, schedule_id: str) -> Schedule | None:
        return await self._update(schedule_id, lambda s: s.paused())

    async def resume(self, schedule_id: str, *, now: float | None = None) -> Schedule | None:
        return await self._update(schedule_id, lambda s: s.resumed(now))

    async def claim_due(self, now: float, *, limit: int = 100) -> builtins.list[ScheduleRun]:
        async def run(c: Any) -> builtins.list[ScheduleRun]:
            async with c.transaction():
                rows = await c.fetch(_Q["schedule_due"], now, limit)
                runs: builtins.list[ScheduleRun] = []
                updates = []
                for r in rows:
                    sched = decode_schedule(r[0])
                    due = sched.next_run_at
                    new, fire = sched.advance(now)
                    updates.append(self._row(new))
                    if fire and due is not None:
                        runs.append(ScheduleRun(schedule=new, due=due))
                if updates:
                    await c.executemany(
                        _SET_ROW,
                        updates,
                    )
                return runs

        return await self._call(run)
