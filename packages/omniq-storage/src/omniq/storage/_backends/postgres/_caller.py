"""Enqueue on the caller's PostgreSQL connection (transactional enqueue).

The task queue's own statements run unchanged on the caller's connection: the store is
copied with its engine replaced by ``CallerEngine``, whose ``call(fn)`` runs ``fn`` on
that connection instead of a pooled one. asyncpg connections are used as they are;
psycopg 3 connections (sync or async) through ``_Psycopg``, which offers the few asyncpg
methods the statements use over psycopg's raw cursors (``$n`` placeholders).

The statements run inside a savepoint of the caller's transaction (or a transaction of
their own when the connection has none open), with ``search_path`` set to the store's
schema for their duration only. ``pg_notify`` inside them is delivered by PostgreSQL when
the caller commits, which wakes the workers; a rollback leaves neither rows nor
notifications.
"""

from __future__ import annotations

import builtins
import inspect
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from omniq.models import StorageError, TransactionalEnqueueError

__all__ = ["CallerEngine", "caller_connection"]

T = TypeVar("T")
_SAVEPOINT = "omniq_enqueue"


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class _Row(tuple[Any, ...]):
    """A result row readable by position and by column name, like asyncpg's Record."""

    _names: dict[str, int]

    def __new__(cls, names: dict[str, int], values: Sequence[Any]) -> _Row:
        row = super().__new__(cls, values)
        row._names = names
        return row

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            return super().__getitem__(self._names[key])
        return super().__getitem__(key)


def _row_factory(cursor: Any) -> Callable[[Sequence[Any]], _Row]:
    names = {c.name: i for i, c in enumerate(cursor.description or ())}
    return lambda values: _Row(names, values)


class _Psycopg:
    """The asyncpg calls the task queue's statements use (``fetch``, ``fetchrow``,
    ``fetchval``, ``execute``), over a psycopg 3 connection, sync or async."""

    def __init__(self, conn: Any, raw_cursor: Any, is_async: bool) -> None:
        self._conn = conn
        self._raw = raw_cursor
        self._async = is_async

    async def _run(self, sql: str, args: Sequence[Any]) -> builtins.list[_Row]:
        cur = self._raw(self._conn, row_factory=_row_factory)
        try:
            if self._async:
                await cur.execute(sql, builtins.list(args) or None)
                return builtins.list(await cur.fetchall()) if cur.description else []
            cur.execute(sql, builtins.list(args) or None)
            return builtins.list(cur.fetchall()) if cur.description else []
        finally:
            closed = cur.close()
            if inspect.isawaitable(closed):
                await closed

    async def fetch(self, sql: str, *args: Any) -> builtins.list[_Row]:
        return await self._run(sql, args)

    async def fetchrow(self, sql: str, *args: Any) -> _Row | None:
        rows = await self._run(sql, args)
        return rows[0] if rows else None

    async def fetchval(self, sql: str, *args: Any) -> Any:
        row = await self.fetchrow(sql, *args)
        return None if row is None else row[0]

    async def execute(self, sql: str, *args: Any) -> str:
        await self._run(sql, args)
        return ""

    def in_transaction(self) -> bool:
        from psycopg.pq import TransactionStatus

        status = self._conn.info.transaction_status
        if status == TransactionStatus.INERROR:
            raise TransactionalEnqueueError(
                "the connection's transaction has failed (an earlier statement raised): "
                "roll it back before enqueueing"
            )
        # Without autocommit psycopg opens a transaction at the first statement, ours
        # included: the caller commits or rolls it back.
        return status == TransactionStatus.INTRANS or not self._conn.autocommit


def caller_connection(connection: object) -> Any:
    """``connection`` as the task queue's statements use it: an asyncpg connection as
    it is, a psycopg 3 connection wrapped; anything else is refused."""
    module = type(connection).__module__
    if module.startswith("asyncpg"):
        return connection
    if module.startswith("psycopg"):
        import psycopg

        if isinstance(connection, psycopg.AsyncConnection):
            return _Psycopg(connection, psycopg.AsyncRawCursor, True)
        if isinstance(connection, psycopg.Connection):
            return _Psycopg(connection, psycopg.RawCursor, False)
    raise TransactionalEnqueueError(
        "a PostgreSQL task store enqueues in the transaction of an asyncpg connection or "
        f"a psycopg 3 connection (sync or async), not a {type(connection).__name__}"
    )


class CallerEngine:
    """The backend as its task queue sees it, with ``call`` running on the caller's
    connection (see the module docstring); every other attribute is the backend's."""

    def __init__(self, backend: Any, conn: Any) -> None:
        self._backend = backend
        self._conn = conn

    def __getattr__(self, name: str) -> Any:
        return getattr(self._backend, name)

    async def call(self, fn: Callable[[Any], Awaitable[T]]) -> T:
        conn = self._conn
        schema = _ident(self._backend.schema)
        if isinstance(conn, _Psycopg):
            return await self._psycopg_call(conn, schema, fn)
        _check_loop(conn)
        try:
            async with conn.transaction():  # a savepoint inside the caller's transaction
                old = await conn.fetchval("SELECT current_setting('search_path')")
                await conn.execute("SELECT set_config('search_path', $1, true)", schema)
                out = await fn(conn)
                await conn.execute("SELECT set_config('search_path', $1, true)", old)
                return out
        except Exception as exc:
            if _ours(exc):
                raise
            raise StorageError(f"postgresql error in the caller's transaction: {exc}") from exc

    async def _psycopg_call(
        self, conn: _Psycopg, schema: str, fn: Callable[[Any], Awaitable[T]]
    ) -> T:
        own = not conn.in_transaction()
        try:
            await conn.execute("BEGIN" if own else f"SAVEPOINT {_SAVEPOINT}")
            try:
                old = await conn.fetchval("SELECT current_setting('search_path')")
                await conn.execute("SELECT set_config('search_path', $1, true)", schema)
                out = await fn(conn)
                await conn.execute("SELECT set_config('search_path', $1, true)", old)
            except BaseException:
                await conn.execute("ROLLBACK" if own else f"ROLLBACK TO SAVEPOINT {_SAVEPOINT}")
                raise
            await conn.execute("COMMIT" if own else f"RELEASE SAVEPOINT {_SAVEPOINT}")
            return out
        except Exception as exc:
            if _ours(exc):
                raise
            raise StorageError(f"postgresql error in the caller's transaction: {exc}") from exc


def _check_loop(conn: Any) -> None:
    """An asyncpg connection runs only on the event loop that opened it."""
    import asyncio

    owner = getattr(getattr(conn, "_con", conn), "_loop", None)
    if owner is not None and owner is not asyncio.get_running_loop():
        raise TransactionalEnqueueError(
            "this asyncpg connection belongs to another event loop: enqueue with the async "
            "API on that loop (await oq.enqueue(..., connection=conn)), or give the "
            "blocking API a psycopg 3 connection"
        )


def _ours(exc: Exception) -> bool:
    """OmniQ's own errors pass through; driver errors become ``StorageError``."""
    return type(exc).__module__.startswith("omniq")
