"""The SQLite backend's worker registry: the ``workers`` table (see ``_backend``)."""

from __future__ import annotations

import builtins
import sqlite3
from collections.abc import Sequence

from omniq.models import WorkerInfo
from omniq.models import now as _now
from omniq.storage._interfaces import WorkerRegistry
from omniq.storage._workers import alive, decode_worker, encode_worker

from ._conn import Connection

__all__ = ["WORKERS_SCHEMA", "SQLiteWorkers"]

WORKERS_SCHEMA = """
CREATE TABLE IF NOT EXISTS workers (
    id TEXT PRIMARY KEY,
    expires_at REAL NOT NULL,
    data BLOB NOT NULL
) WITHOUT ROWID
"""


class SQLiteWorkers(WorkerRegistry):
    """One row per worker: id, expires_at, the msgpack entry."""

    def __init__(self, db: Connection) -> None:
        self._db = db

    async def setup(self) -> None:
        """Create the table (idempotent; called by the backend's ``connect``)."""
        await self._db.tx(lambda c: c.execute(WORKERS_SCHEMA))

    async def register(self, workers: Sequence[WorkerInfo]) -> None:
        rows = [(w.id, w.expires_at, encode_worker(w)) for w in workers]
        await self._db.tx(
            lambda c: c.executemany("INSERT OR REPLACE INTO workers VALUES (?, ?, ?)", rows)
        )

    async def deregister(self, worker_ids: Sequence[str]) -> int:
        rows = [(i,) for i in worker_ids]

        def run(c: sqlite3.Connection) -> int:
            return c.executemany("DELETE FROM workers WHERE id = ?", rows).rowcount

        return await self._db.tx(run)

    async def list(self, *, now: float | None = None) -> builtins.list[WorkerInfo]:
        t = _now() if now is None else now
        rows = await self._db.run(
            lambda c: c.execute(
                "SELECT data FROM workers WHERE expires_at > ? ORDER BY id", (t,)
            ).fetchall()
        )
        return alive((decode_worker(r[0]) for r in rows), t)

    async def purge_expired(self, *, now: float | None = None) -> int:
        t = _now() if now is None else now
        return await self._db.tx(
            lambda c: c.execute("DELETE FROM workers WHERE expires_at <= ?", (t,)).rowcount
        )
