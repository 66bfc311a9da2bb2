"""Results, events and schedules of the PostgreSQL backend (see ``_postgres``)."""

from __future__ import annotations

import builtins
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

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

from . import _postgres_sql as sql
from ._interfaces import (
    EventStorage,
    ResultStorage,
    ScheduleRun,
    ScheduleStorage,
)
from ._remote import (
    decode_result,
    decode_schedule,
    encode,
    wait_event,
)

if TYPE_CHECKING:
    from ._postgres import PostgresBackend

__all__ = ["PgEvents", "PgResults", "PgSchedules"]

T = TypeVar("T")
_json = msgspec.json.Encoder()


class _Base:
    def __init__(self, be: PostgresBackend) -> None:
        self._be = be

    async def _run(self, fn: Callable[[Any], Awaitable[T]]) -> T:
        return await self._be.run(fn)


class PgResults(_Base, ResultStorage):
    """Results table; ``put`` notifies the result channel with the task id."""

    async def put(self, results: Sequence[TaskResult]) -> None:
        if not results:
            return
        args = (
            [r.task_id for r in results],
            [TaskStatus(r.status).value for r in results],
            [r.expires_at for r in results],
            [encode(r) for r in results],
            self._be.result_channel,
        )
        await self._run(lambda c: c.fetchval(sql.RESULT_PUT, *args))

    async def get(self, task_ids: Sequence[str]) -> builtins.list[TaskResult | None]:
        if not task_ids:
            return []
        ids = builtins.list(task_ids)
        rows = await self._run(
            lambda c: c.fetch(
                "SELECT task_id, envelope FROM results WHERE task_id = ANY($1::text[]) "
                "AND (expires_at IS NULL OR expires_at > $2)",
                ids,
                now(),
            )
        )
        by_id = {r["task_id"]: decode_result(r["envelope"]) for r in rows}
        return [by_id.get(i) for i in ids]

    async def wait(self, task_id: str, timeout: float | None) -> TaskResult | None:  # noqa: ASYNC109
        deadline = None if timeout is None else now() + timeout
        keys = [task_id]
        while True:
            ev = self._be.result_waiters.register(keys)
            try:
                res = await self.get_one(task_id)
                if res is not None:
                    return res
                left = None if deadline is None else deadline - now()
                if left is not None and left <= 0:
                    return None
                await wait_event(ev, left)
            finally:
                self._be.result_waiters.unregister(keys, ev)

    async def delete(self, task_ids: Sequence[str]) -> int:
        ids = builtins.list(task_ids)
        return int(
            await self._run(
                lambda c: c.fetchval(
                    "WITH d AS (DELETE FROM results WHERE task_id = ANY($1::text[]) RETURNING 1) "
                    "SELECT count(*) FROM d",
                    ids,
                )
            )
        )

    async def purge_expired(self) -> int:
        return int(
            await self._run(
                lambda c: c.fetchval(
                    "WITH d AS (DELETE FROM results WHERE expires_at <= $1 RETURNING 1) "
                    "SELECT count(*) FROM d",
                    now(),
                )
            )
        )


class PgEvents(_Base, EventStorage):
    """Events as plain columns with JSONB metadata, queryable with SQL."""

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
        await self._run(lambda c: c.execute(sql.EVENT_APPEND, *args))

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
        rows = await self._run(lambda c: c.fetch(q, *args))
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
        return int(await self._run(lambda c: c.fetchval(q, *args)))

    async def count(self) -> int:
        return int(await self._run(lambda c: c.fetchval("SELECT count(*) FROM events")))


_SET_ROW = "UPDATE schedules SET state = $2, next_run_at = $3, envelope = $4 WHERE id = $1"


class PgSchedules(_Base, ScheduleStorage):
    """Schedules; ``claim_due`` locks due rows (SKIP LOCKED) and advances them in one
    transaction, so each run is claimed once across schedulers."""

    @staticmethod
    def _row(s: Schedule) -> tuple[str, str, float | None, bytes]:
        return (s.id, ScheduleState(s.state).value, s.next_run_at, encode(s))

    _UPSERT = (
        "INSERT INTO schedules (id, state, next_run_at, envelope) "
        "SELECT * FROM unnest($1::text[], $2::text[], $3::float8[], $4::bytea[]) "
        "ON CONFLICT (id) DO UPDATE SET state = EXCLUDED.state, "
        "next_run_at = EXCLUDED.next_run_at, envelope = EXCLUDED.envelope"
    )

    async def put(self, schedules: Sequence[Schedule]) -> None:
        if not schedules:
            return
        rows = [self._row(s) for s in schedules]
        cols = [builtins.list(c) for c in zip(*rows, strict=True)]
        await self._run(lambda c: c.execute(self._UPSERT, *cols))

    async def get(self, schedule_id: str) -> Schedule | None:
        raw = await self._run(
            lambda c: c.fetchval("SELECT envelope FROM schedules WHERE id = $1", schedule_id)
        )
        return None if raw is None else decode_schedule(raw)

    async def list(self, *, state: ScheduleState | None = None) -> builtins.list[Schedule]:
        if state is None:
            rows = await self._run(lambda c: c.fetch("SELECT envelope FROM schedules ORDER BY id"))
        else:
            st = ScheduleState(state).value
            rows = await self._run(
                lambda c: c.fetch("SELECT envelope FROM schedules WHERE state = $1 ORDER BY id", st)
            )
        return [decode_schedule(r[0]) for r in rows]

    async def delete(self, schedule_id: str) -> bool:
        n = await self._run(
            lambda c: c.fetchval(
                "WITH d AS (DELETE FROM schedules WHERE id = $1 RETURNING 1) "
                "SELECT count(*) FROM d",
                schedule_id,
            )
        )
        return bool(n)

    async def _update(
        self, schedule_id: str, change: Callable[[Schedule], Schedule]
    ) -> Schedule | None:
        async def run(c: Any) -> Schedule | None:
            async with c.transaction():
                raw = await c.fetchval(
                    "SELECT envelope FROM schedules WHERE id = $1 FOR UPDATE", schedule_id
                )
                if raw is None:
                    return None
                new = change(decode_schedule(raw))
                await c.execute(
                    _SET_ROW,
                    *self._row(new),
                )
                return new

        return await self._run(run)

    async def pause(self, schedule_id: str) -> Schedule | None:
        return await self._update(schedule_id, lambda s: s.paused())

    async def resume(self, schedule_id: str, *, now: float | None = None) -> Schedule | None:
        return await self._update(schedule_id, lambda s: s.resumed(now))

    async def claim_due(self, now: float, *, limit: int = 100) -> builtins.list[ScheduleRun]:
        async def run(c: Any) -> builtins.list[ScheduleRun]:
            async with c.transaction():
                rows = await c.fetch(
                    "SELECT envelope FROM schedules WHERE state = 'active' AND next_run_at <= $1 "
                    "ORDER BY next_run_at, id LIMIT $2 FOR UPDATE SKIP LOCKED",
                    now,
                    limit,
                )
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

        return await self._run(run)
