"""The SQLite backend's connection: schema, one connection driven by one thread,
``BEGIN IMMEDIATE`` transactions."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from omniq.models import BackendUnavailableError, ConfigError, StorageError, redact_url

from ._flow import FLOW_SCHEMA
from ._unique import UNIQUE_SCHEMA

__all__ = ["SCHEMA", "Connection", "db_path", "placeholders"]

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
CREATE INDEX IF NOT EXISTS tasks_error ON tasks (id) WHERE status = 'error';
CREATE INDEX IF NOT EXISTS tasks_cancelled ON tasks (id) WHERE status = 'cancelled';
CREATE INDEX IF NOT EXISTS tasks_expired ON tasks (id) WHERE status = 'expired';
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
CREATE TABLE IF NOT EXISTS paused_queues (
    queue TEXT PRIMARY KEY,
    paused_at REAL NOT NULL
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS task_progress (
    task_id TEXT PRIMARY KEY,
    data BLOB NOT NULL,
    updated_at REAL NOT NULL
);
"""


def db_path(url: str) -> str:
    rest = url.split("://", 1)[1]
    if rest in (":memory:", "/:memory:", ""):
        return ":memory:"
    if not rest.startswith("/"):
        raise ConfigError(
            "url", redact_url(url), "sqlite:///relative.db, sqlite:////abs.db or sqlite://:memory:"
        )
    return rest[1:].split("?", 1)[0]


class Connection:
    """One sqlite3 connection used only from its own single worker thread."""

    def __init__(self, path: str, busy_timeout: float) -> None:
        self.path = path
        self._busy_ms = int(busy_timeout * 1000)
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="omniq-sqlite")
        self._conn: sqlite3.Connection | None = None
        # Read-only URI of the file, fixed now (a later chdir must not move it).
        self._ro_uri = "" if path == ":memory:" else Path(path).absolute().as_uri() + "?mode=ro"

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
            for stmt in (SCHEMA + FLOW_SCHEMA + UNIQUE_SCHEMA).split(";"):
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

    async def read_apart(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run the read-only ``fn(conn)`` on a connection and thread of its own, so a
        long read (counting every task) does not hold up the store's other calls; WAL
        lets it run beside them. An in-memory database has only the one connection."""
        if self.path == ":memory:":
            return await self.run(fn)

        def read() -> T:
            conn = sqlite3.connect(self._ro_uri, uri=True, timeout=self._busy_ms / 1000)
            try:
                return _wrapped(self.path, fn, conn)
            finally:
                conn.close()

        return await asyncio.to_thread(read)

    async def tx(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(conn)`` inside one ``BEGIN IMMEDIATE`` transaction."""
        return await self.run(lambda conn: _in_tx(conn, fn))

    def _call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._conn is None:
            raise StorageError(f"SQLite store {self.path!r} is not connected")
        return _wrapped(self.path, fn, self._conn)

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


def _wrapped(path: str, fn: Callable[[sqlite3.Connection], T], conn: sqlite3.Connection) -> T:
    """``fn(conn)`` with sqlite3's errors turned into the storage error tree."""
    try:
        return fn(conn)
    except sqlite3.OperationalError as exc:
        if "locked" in str(exc) or "busy" in str(exc):
            raise BackendUnavailableError(f"SQLite {path!r} is busy: {exc}") from exc
        raise StorageError(f"SQLite {path!r}: {exc}") from exc
    except sqlite3.Error as exc:
        raise StorageError(f"SQLite {path!r}: {exc}") from exc


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
