"""Progress records of the SQLite task queue (table ``task_progress``).

``set_progress`` is one ``BEGIN IMMEDIATE`` transaction: each lease still held (same
fence as ``renew``) is extended and its progress replaced. Cancels made by other
processes are noticed by the contract's status poll (``cancel_poll``); cancels made
through this backend object reach its watchers at once.
"""

from __future__ import annotations

import builtins
import sqlite3
from collections.abc import Sequence
from typing import TYPE_CHECKING

import msgspec

from omniq.models import Progress, now
from omniq.storage._interfaces import ProgressUpdate

from ._conn import placeholders

if TYPE_CHECKING:
    from ._conn import Connection

__all__ = ["SQLiteTaskControl"]

_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder(Progress).decode

_RENEW = "UPDATE tasks SET lease_expires_at = ? WHERE id = ? AND token = ? AND status = 'running'"
_PUT = "INSERT OR REPLACE INTO task_progress (task_id, data, updated_at) VALUES (?, ?, ?)"


class SQLiteTaskControl:
    """Mixed into ``SQLiteTasks`` (before ``TaskQueueStorage``)."""

    if TYPE_CHECKING:
        _db: Connection

    async def set_progress(
        self, updates: Sequence[ProgressUpdate], lease: float
    ) -> builtins.list[str]:
        if not updates:
            return []
        until = now() + lease
        rows = [(u.task_id, u.token, _encode(u.progress), u.progress.updated_at) for u in updates]

        def run(c: sqlite3.Connection) -> list[str]:
            stale = []
            for tid, tok, blob, at in rows:
                if c.execute(_RENEW, (until, tid, tok)).rowcount == 0:
                    stale.append(tid)
                else:
                    c.execute(_PUT, (tid, blob, at))
            return stale

        return await self._db.tx(run)

    async def store_progress(self, updates: Sequence[ProgressUpdate]) -> None:
        rows = [(u.task_id, _encode(u.progress), u.progress.updated_at) for u in updates]
        if rows:
            await self._db.tx(lambda c: c.executemany(_PUT, rows))

    async def get_progress(self, task_ids: Sequence[str]) -> builtins.list[Progress | None]:
        ids = builtins.list(task_ids)
        if not ids:
            return []
        sql = f"SELECT task_id, data FROM task_progress WHERE task_id IN ({placeholders(len(ids))})"
        rows = await self._db.run(lambda c: c.execute(sql, ids).fetchall())
        found: dict[str, Progress] = {}
        for tid, blob in rows:
            try:
                found[tid] = _decode(blob)
            except msgspec.DecodeError:
                continue
        return [found.get(i) for i in ids]
