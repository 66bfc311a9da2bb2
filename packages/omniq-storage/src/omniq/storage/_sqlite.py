"""The SQLite backend (``sqlite:///path.db``): all four contracts in one database file.

WAL journal, ``synchronous=NORMAL`` and a busy timeout let several processes (and
hosts sharing one local disk, not a network filesystem) use one file. Every state
change is one ``BEGIN IMMEDIATE`` transaction, so it is atomic against every other
connection; the claim is a single ``UPDATE ... RETURNING``. Each backend owns one
connection driven by one dedicated thread, so the event loop never blocks on SQLite.

URL forms: ``sqlite:///relative.db``, ``sqlite:////absolute.db`` (SQLAlchemy style),
``sqlite://:memory:`` (one connection, this backend only).
"""

from __future__ import annotations

import asyncio
import builtins
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import msgspec

from omniq.models import (
    BackendUnavailableError,
    ConfigError,
    EventType,
    Schedule,
    ScheduleState,
    StorageError,
    TaskEvent,
    TaskResult,
    now,
)

from ._codec import decode_result, decode_schedule, encode
from ._interfaces import Backend, EventStorage, ResultStorage, ScheduleRun, ScheduleStorage
from ._notify import Notifier
from ._waiting import wait_for_result

__all__ = ["SQLiteBackend"]

T = TypeVar("T")

SCHEMA = """
CREATE TABLE IF NOT EXISTS tasks (
    id TEXT PRIMARY KEY,
    queue TEXT NOT NULL,
    priority INTEGER NOT NULL,
    status TEXT NOT NULL,
    ready INTEGER NOT NULL,
    eta REAL,
    expires_at REAL,
    attempt INTEGER NOT NULL,
    key TEXT,
    token TEXT,
    worker_id TEXT,
    lease_expires_at REAL,
    finished_at REAL,
    data BLOB NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS tasks_claim ON tasks (queue, priority DESC, id)
    WHERE status = 'pending' AND ready = 1;
CREATE INDEX IF NOT EXISTS tasks_lease ON tasks (lease_expires_at) WHERE status = 'running';
CREATE INDEX IF NOT EXISTS tasks_ttl ON tasks (expires_at)
    WHERE status = 'pending' AND expires_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS tasks_finished ON tasks (finished_at) WHERE finished_at IS NOT NULL;
CREATE UNIQUE INDEX IF NOT EXISTS tasks_key ON tasks (key)
    WHERE key IS NOT NULL AND status IN ('pending', 'running');
CREATE TABLE IF NOT EXISTS deps (
    dep_id TEXT NOT NULL,
    task_id TEXT NOT NULL,
    PRIMARY KEY (dep_id, task_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS deps_task ON deps (task_id);
CREATE TABLE IF NOT EXISTS results (
    task_id TEXT PRIMARY KEY,
    expires_at REAL,
    data BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS results_ttl ON results (expires_at) WHERE expires_at IS NOT NULL;
CREATE TABLE IF NOT EXISTS events (
    id TEXT PRIMARY KEY,
    task_id TEXT NOT NULL,
    type TEXT NOT NULL,
    timestamp REAL NOT NULL,
    worker_id TEXT,
    queue TEXT,
    metadata TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_time ON events (timestamp, id);
CREATE INDEX IF NOT EXISTS events_task ON events (task_id, timestamp, id);
CREATE INDEX IF NOT EXISTS events_type ON events (type, timestamp, id);
CREATE TABLE IF NOT EXISTS schedules (
    id TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    next_run_at REAL,
    data BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS schedules_due ON schedules (next_run_at) WHERE state = 'active';
"""


def _db_path(url: str) -> str:
    rest = url.split("://", 1)[1]
    if rest in (":memory:", "/:memory:", ""):
        return ":memory:"
    if not rest.startswith("/"):
        raise ConfigError(
            "url", url, "sqlite:///relative.db, sqlite:////abs.db or sqlite://:memory:"
        )
    return rest[1:].split("?", 1)[0]


class Connection:
    """One sqlite3 connection used only from its own single worker thread."""

    def __init__(self, path: str, busy_timeout: float) -> None:
        self.path = path
        self._busy_ms = int(busy_timeout * 1000)
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="omniq-sqlite")
        self._conn: sqlite3.Connection | None = None

    def _open(self) -> None:
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False, timeout=self._busy_ms / 1000
        )
        conn.execute(f"PRAGMA busy_timeout = {self._busy_ms}")
        if self.path != ":memory:":
            conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA temp_store = MEMORY")
        conn.execute("BEGIN IMMEDIATE")
        try:
            for stmt in SCHEMA.split(";"):
                if stmt.strip():
                    conn.execute(stmt)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        self._conn = conn

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(conn)`` on the connection's thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self._call, fn)

    async def tx(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(conn)`` inside one ``BEGIN IMMEDIATE`` transaction."""
        return await self.run(lambda conn: _in_tx(conn, fn))

    def _call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._conn is None:
            raise StorageError(f"SQLite store {self.path!r} is not connected")
        try:
            return fn(self._conn)
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc) or "busy" in str(exc):
                raise BackendUnavailableError(f"SQLite {self.path!r} is busy: {exc}") from exc
            raise StorageError(f"SQLite {self.path!r}: {exc}") from exc
        except sqlite3.Error as exc:
            raise StorageError(f"SQLite {self.path!r}: {exc}") from exc

    async def open(self) -> None:
        if self._conn is None:
            if self._pool._shutdown:
                self._pool = ThreadPoolExecutor(1, thread_name_prefix="omniq-sqlite")
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(self._pool, self._open)

    async def close(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(self._pool, conn.close)
        self._pool.shutdown(wait=False)


def _in_tx(conn: sqlite3.Connection, fn: Callable[[sqlite3.Connection], T]) -> T:
    conn.execute("BEGIN IMMEDIATE")
    try:
        out = fn(conn)
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return out


def placeholders(n: int) -> str:
    return ",".join("?" * n)


class _Results(ResultStorage):
    def __init__(self, db: Connection, poll_interval: float) -> None:
        self._db = db
        self._poll = poll_interval
        self.notifier = Notifier()

    async def put(self, results: Sequence[TaskResult]) -> None:
        rows = [(r.task_id, r.expires_at, encode(r)) for r in results]
        await self._db.tx(
            lambda c: c.executemany("INSERT OR REPLACE INTO results VALUES (?, ?, ?)", rows)
        )
        self.notifier.notify([r.task_id for r in results])

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
        return [decode_result(found[i]) if i in found else None for i in ids]

    async def wait(self, task_id: str, timeout: float | None) -> TaskResult | None:  # noqa: ASYNC109
        return await wait_for_result(
            self, self.notifier, task_id, timeout, poll_interval=self._poll
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


class _Events(EventStorage):
    def __init__(self, db: Connection) -> None:
        self._db = db

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


class _Schedules(ScheduleStorage):
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


class SQLiteBackend(Backend):
    """All four contracts in one SQLite database file (``sqlite:///path.db``).

    Options: ``busy_timeout`` (seconds a writer waits for the lock, default 30),
    ``poll_interval`` (how often a waiter re-checks for other processes' changes,
    default 0.05 s; changes from this process wake waiters at once).
    """

    def __init__(
        self, url: str, *, busy_timeout: float = 30.0, poll_interval: float = 0.05
    ) -> None:
        from ._sqlite_tasks import SQLiteTasks

        self.url = url
        self.db = Connection(_db_path(url), busy_timeout)
        self.tasks = SQLiteTasks(self.db, poll_interval)
        self.results = _Results(self.db, poll_interval)
        self.events = _Events(self.db)
        self.schedules = _Schedules(self.db)

    async def connect(self) -> None:
        await self.db.open()

    async def close(self) -> None:
        await self.db.close()
