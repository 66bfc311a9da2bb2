"""Results, events and schedules of the SQLite backend (see ``_backend``)."""

from __future__ import annotations

import builtins
import copy
import sqlite3
from collections.abc import Callable, Sequence
from typing import Any, cast

import msgspec

from omniq.models import EventType, Schedule, ScheduleState, TaskEvent, TaskResult, now
from omniq.storage._codec import decode_schedule, encode
from omniq.storage._corrupt import read_result
from omniq.storage._interfaces import (
    EventStorage,
    ResultStorage,
    ScheduleRun,
    ScheduleStorage,
    TaskQueueStorage,
)
from omniq.storage._wake import Wake, wait_for_result

from ._caller import caller_db
from ._conn import Connection, placeholders

__all__ = ["Events", "Results", "Schedules"]


class Results(ResultStorage):
    def __init__(self, db: Connection, poll_interval: float) -> None:
        self._db = db
        self._poll = poll_interval
        self.wake = Wake()

    async def put(self, results: Sequence[TaskResult]) -> None:
        self.payload_limit.check_results(results)
        rows = [(r.task_id, r.expires_at, encode(r)) for r in results]
        await self._db.tx(
            lambda c: c.executemany("INSERT OR REPLACE INTO results VALUES (?, ?, ?)", rows)
        )
        self.wake.notify([r.task_id for r in results])

    async def get(self, task_ids: Sequence[str]) -> list[TaskResult | None]:
        ids = list(task_ids)
        t = now()

        def read(c: sqlite3.Connection) -> dict[str, bytes]:
            out: dict[str, bytes] = {}
            for i in range(0, len(ids), 500):
                chunk = ids[i : i + 500]
                sql = (
                    "SELECT task_id, data FROM results"
                    f" WHERE task_id IN ({placeholders(len(chunk))})"
                    " AND (expires_at IS NULL OR expires_at > ?)"
                )
                out.update(c.execute(sql, [*chunk, t]).fetchall())
            return out

        found = await self._db.run(read)
        return [read_result(found[i], i) if i in found else None for i in ids]

    async def wait(self, task_id: str, timeout: float | None) -> TaskResult | None:  # noqa: ASYNC109
        return await wait_for_result(
            lambda: self.get_one(task_id), self.wake, task_id, timeout, recheck=self._poll
        )

    async def delete(self, task_ids: Sequence[str]) -> int:
        rows = [(i,) for i in task_ids]

        def run(c: sqlite3.Connection) -> int:
            return c.executemany("DELETE FROM results WHERE task_id = ?", rows).rowcount

        return await self._db.tx(run)

    async def purge_expired(self) -> int:
        t = now()
        return await self._db.tx(
            lambda c: c.execute("DELETE FROM results WHERE expires_at <= ?", (t,)).rowcount
        )


_json_enc = msgspec.json.Encoder()
_json_meta = msgspec.json.Decoder(dict[str, Any])


class Events(EventStorage):
    def __init__(self, db: Connection) -> None:
        self._db = db

    async def append_in_transaction(
        self, connection: object, events: Sequence[TaskEvent], *, tasks: TaskQueueStorage
    ) -> bool:
        if getattr(tasks, "_db", None) is not self._db:
            return False  # the tasks live in another backend's store
        bound = copy.copy(self)
        bound._db = cast(Connection, caller_db(connection, self._db.path))
        await bound.append(events)
        return True

    async def append(self, events: Sequence[TaskEvent]) -> None:
        rows = [
            (
                e.id,
                e.task_id,
                e.type.value,
                e.timestamp,
                e.worker_id,
                e.queue,
                _json_enc.encode(e.metadata).decode(),
            )
            for e in events
        ]
        await self._db.tx(
            lambda c: c.executemany("INSERT OR REPLACE INTO events VALUES (?,?,?,?,?,?,?)", rows)
        )

    async def query(
        self,
        *,
        task_id: str | None = None,
        types: Sequence[EventType] | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int | None = None,
    ) -> list[TaskEvent]:
        where: list[str] = []
        args: list[Any] = []
        if task_id is not None:
            where.append("task_id = ?")
            args.append(task_id)
        if types is not None:
            where.append(f"type IN ({placeholders(len(types))})")
            args.extend(EventType(t).value for t in types)
        if since is not None:
            where.append("timestamp >= ?")
            args.append(since)
        if until is not None:
            where.append("timestamp < ?")
            args.append(until)
        sql = "SELECT id, task_id, type, timestamp, worker_id, queue, metadata FROM events"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY timestamp, id"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(limit)
        rows = await self._db.run(lambda c: c.execute(sql, args).fetchall())
        return [
            TaskEvent(
                id=r[0],
                task_id=r[1],
                type=EventType(r[2]),
                timestamp=r[3],
                worker_id=r[4],
                queue=r[5],
                metadata=_json_meta.decode(r[6]),
            )
            for r in rows
        ]

    async def purge(self, *, older_than: float | None = None, keep_last: int | None = None) -> int:
        def run(c: sqlite3.Connection) -> int:
            n = 0
            if older_than is not None:
                n += c.execute("DELETE FROM events WHERE timestamp < ?", (older_than,)).rowcount
            if keep_last is not None:
                n += c.execute(
                    "DELETE FROM events WHERE id NOT IN (SELECT id FROM events"
                    " ORDER BY timestamp DESC, id DESC LIMIT ?)",
                    (max(keep_last, 0),),
                ).rowcount
            return n

        return await self._db.tx(run)

    async def count(self) -> int:
        return int(
            await self._db.run(lambda c: c.execute("SELECT count(*) FROM events").fetchone()[0])
        )


def _sched_row(s: Schedule) -> tuple[str, str, float | None, bytes]:
    return (s.id, s.state.value, s.next_run_at, encode(s))


class Schedules(ScheduleStorage):
    def __init__(self, db: Connection) -> None:
        self._db = db

    async def put(self, schedules: Sequence[Schedule]) -> None:
        rows = [_sched_row(s) for s in schedules]
        await self._db.tx(
            lambda c: c.executemany("INSERT OR REPLACE INTO schedules VALUES (?,?,?,?)", rows)
        )

    async def get(self, schedule_id: str) -> Schedule | None:
        row = await self._db.run(
            lambda c: c.execute(
                "SELECT data FROM schedules WHERE id = ?", (schedule_id,)
            ).fetchone()
        )
        return None if row is None else decode_schedule(row[0])

    async def list(self, *, state: ScheduleState | None = None) -> builtins.list[Schedule]:
        args: tuple[str, ...] = ()
        if state is None:
            sql = "SELECT data FROM schedules ORDER BY id"
        else:
            sql, args = "SELECT data FROM schedules WHERE state = ? ORDER BY id", (state.value,)
        rows = await self._db.run(lambda c: c.execute(sql, args).fetchall())
        return [decode_schedule(r[0]) for r in rows]

    async def delete(self, schedule_id: str) -> bool:
        return bool(
            await self._db.tx(
                lambda c: c.execute("DELETE FROM schedules WHERE id = ?", (schedule_id,)).rowcount
            )
        )

    async def _update(
        self, schedule_id: str, change: Callable[[Schedule], Schedule]
    ) -> Schedule | None:
        def run(c: sqlite3.Connection) -> Schedule | None:
            row = c.execute("SELECT data FROM schedules WHERE id = ?", (schedule_id,)).fetchone()
            if row is None:
                return None
            s = change(decode_schedule(row[0]))
            c.execute("INSERT OR REPLACE INTO schedules VALUES (?,?,?,?)", _sched_row(s))
            return s

        return await self._db.tx(run)

    async def pause(self, schedule_id: str) -> Schedule | None:
        return await self._update(schedule_id, lambda s: s.paused())

    async def resume(self, schedule_id: str, *, now: float | None = None) -> Schedule | None:
        return await self._update(schedule_id, lambda s: s.resumed(now))

    async def claim_due(self, now: float, *, limit: int = 100) -> builtins.list[ScheduleRun]:
        def run(c: sqlite3.Connection) -> builtins.list[ScheduleRun]:
            rows = c.execute(
                "SELECT data FROM schedules WHERE state = 'active' AND next_run_at <= ?"
                " ORDER BY next_run_at, id LIMIT ?",
                (now, limit),
            ).fetchall()
            runs: builtins.list[ScheduleRun] = []
            for (data,) in rows:
                s = decode_schedule(data)
                advanced, fire = s.advance(now)
                swapped = c.execute(
                    "UPDATE schedules SET data = ?, next_run_at = ?, state = ?"
                    " WHERE id = ? AND next_run_at = ?",
                    (
                        encode(advanced),
                        advanced.next_run_at,
                        advanced.state.value,
                        s.id,
                        s.next_run_at,
                    ),
                ).rowcount
                if swapped == 1 and fire and s.next_run_at is not None:
                    runs.append(ScheduleRun(schedule=advanced, due=s.next_run_at))
            return runs

        return await self._db.tx(run)
