"""Enqueue on the caller's ``sqlite3`` connection (transactional enqueue).

The task queue's own enqueue runs unchanged with its connection replaced by
``CallerDb``, whose ``tx(fn)`` runs ``fn`` on the caller's connection, in the calling
thread, inside a savepoint of the caller's transaction. A connection in the sqlite3
module's default mode with no transaction open yet gets one (``BEGIN``), as its next
write would: the caller's commit or rollback ends it. An autocommit connection
(``isolation_level=None`` outside a transaction) gets a transaction of its own,
committed at once.

Workers of this process are woken when the enqueue returns and re-check; they see the
rows when the caller commits, through the change counter every SQLite waiter polls
(``PRAGMA data_version``), as workers of other processes do.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable
from typing import TypeVar

from omniq.models import StorageError, TransactionalEnqueueError

__all__ = ["CallerDb", "caller_db"]

T = TypeVar("T")
_SAVEPOINT = "omniq_enqueue"


def _main_file(conn: sqlite3.Connection) -> str:
    for _seq, name, file in conn.execute("PRAGMA database_list").fetchall():
        if name == "main":
            return str(file or "")
    return ""


def _same_file(a: str, b: str) -> bool:
    if not a or not b:
        return False
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def caller_db(connection: object, path: str) -> CallerDb:
    """``connection`` checked to be a ``sqlite3.Connection`` to the database file
    ``path`` (the task store's own)."""
    if not isinstance(connection, sqlite3.Connection):
        raise TransactionalEnqueueError(
            "a SQLite task store enqueues in the transaction of a sqlite3.Connection to "
            f"its own database file, not a {type(connection).__name__}"
        )
    try:
        file = _main_file(connection)
    except sqlite3.ProgrammingError as exc:
        raise TransactionalEnqueueError(
            f"the sqlite3 connection cannot be used here ({exc}): open it with "
            "check_same_thread=False to enqueue through it from the blocking API"
        ) from exc
    if not _same_file(file, path):
        raise TransactionalEnqueueError(
            f"the sqlite3 connection is to {file or 'an in-memory database'!r}, not the "
            f"task store's database file {path!r}"
        )
    return CallerDb(connection, path)


class CallerDb:
    """The task queue's ``Connection`` as ``enqueue`` uses it (``tx``), on the caller's
    connection (see the module docstring)."""

    def __init__(self, conn: sqlite3.Connection, path: str) -> None:
        self._conn = conn
        self.path = path

    async def tx(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        conn = self._conn
        try:
            own = not conn.in_transaction and (
                conn.isolation_level is None or getattr(conn, "autocommit", -1) is True
            )
            if not conn.in_transaction:
                conn.execute("BEGIN IMMEDIATE" if own else "BEGIN")
            conn.execute(f"SAVEPOINT {_SAVEPOINT}")
            try:
                out = fn(conn)
            except BaseException:
                conn.execute(f"ROLLBACK TO SAVEPOINT {_SAVEPOINT}")
                conn.execute(f"RELEASE SAVEPOINT {_SAVEPOINT}")
                if own:
                    conn.execute("ROLLBACK")
                raise
            conn.execute(f"RELEASE SAVEPOINT {_SAVEPOINT}")
            if own:
                conn.execute("COMMIT")
            return out
        except sqlite3.ProgrammingError as exc:
            raise TransactionalEnqueueError(
                f"the sqlite3 connection cannot be used here ({exc}): open it with "
                "check_same_thread=False to enqueue through it from the blocking API"
            ) from exc
        except sqlite3.Error as exc:
            raise StorageError(f"SQLite {self.path!r} (caller's transaction): {exc}") from exc

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return await self.tx(fn)
