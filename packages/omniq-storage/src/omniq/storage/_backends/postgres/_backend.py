"""PostgreSQL backend (asyncpg): tasks, results, events and schedules.

Tasks are rows with indexed columns (queue, status, priority, id, eta, lease, key)
and the msgpack envelope as ``bytea``. ``claim`` is one ``UPDATE ... FROM (SELECT ...
FOR UPDATE SKIP LOCKED)`` statement that also takes over lapsed leases; completion,
cancellation and expiry resolve dependents inside the same statement (PL/pgSQL
functions, see ``sql/migrations``). ``LISTEN/NOTIFY`` wakes waiting workers and result
waiters. Events are plain columns plus JSONB metadata.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import uuid
import weakref
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import msgspec

from omniq.models import (
    BackendUnavailableError,
    ClaimedTask,
    StorageError,
    Task,
    TaskStatus,
    redact_url,
)
from omniq.storage._corrupt import try_task
from omniq.storage._interfaces import Backend
from omniq.storage._limits import PayloadLimit
from omniq.storage._outage import Outage, describe
from omniq.storage._remote import claimed, split_options, with_state
from omniq.storage._wake import Wake

from ._engine import push_key
from ._maintenance import Vacuumer
from ._sql import MIGRATIONS

try:
    import asyncpg  # type: ignore[import-untyped]
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    from omniq.models import MissingExtraError

    raise MissingExtraError(
        "the postgresql backend needs: pip install 'omniq-storage[postgres]'"
    ) from exc

from ._stores import PgEvents, PgResults, PgSchedules
from ._tasks import PgTaskQueue
from ._workers import PgWorkers

__all__ = ["PostgresBackend"]

T = TypeVar("T")
PG_FIELD_LIMIT = (1 << 30) - 1
"""The largest value PostgreSQL stores in one field (a task or result envelope's bytea)."""
_json = msgspec.json.Encoder()
_CONN_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.InterfaceError,
    asyncpg.exceptions.InternalClientError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.CrashShutdownError,
    ConnectionError,
    OSError,
    TimeoutError,
)
_RETRY_TX: tuple[type[BaseException], ...] = (
    asyncpg.exceptions.DeadlockDetectedError,
    asyncpg.exceptions.SerializationError,
)
_log = logging.getLogger("omniq.storage.postgres")
_open_backends: weakref.WeakSet[PostgresBackend] = weakref.WeakSet()


class _PoolFloorFilter(logging.Filter):
    """asyncpg logs every failed attempt to restore a pool's minimum size, with a
    traceback; for the pools of OmniQ backends the failure goes to that backend's outage
    tracker instead (which logs the outage once). Other pools' records pass."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not str(record.msg).startswith("Failed to restore the pool connection floor"):
            return True
        try:
            task = asyncio.current_task()
        except RuntimeError:
            return True
        for be in list(_open_backends):
            pool = be._pool
            if pool is not None and getattr(pool, "_maintenance_task", None) is task:
                exc = record.exc_info[1] if record.exc_info else None
                be.outage.failed(exc if exc is not None else "reconnect failed")
                return False
        return True


logging.getLogger("asyncpg.pool").addFilter(_PoolFloorFilter())


async def _keep_session(_conn: Any) -> None:
    """Pool reset hook: skip asyncpg's default reset query (``RESET ALL; UNLISTEN *;
    CLOSE ALL; pg_advisory_unlock_all()``), one extra round trip per call. Pooled
    connections never LISTEN, change settings, open cursors or take session locks;
    asyncpg still rolls back an open transaction before calling this."""


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class _Checkout:
    """``async with _Checkout(backend) as conn``: the backend's lane connection when no
    other call is using it, else a connection acquired from the pool for this call.

    The lane is one pooled connection the backend keeps checked out between calls, so
    a call that finds it free skips the pool's acquire and release (a queue hand-off,
    a shielded release task and an idle timer per call: about a quarter of the client
    CPU of a single enqueue). A call that fails or is cancelled on the lane hands it
    back to the pool, whose release rolls back an open transaction, waits for a
    cancelled query or discards a broken connection; the next call takes a new lane."""

    __slots__ = ("_be", "_conn", "_ctx", "_lane", "_pool")

    def __init__(self, be: PostgresBackend) -> None:
        self._be = be
        self._ctx: Any = None
        self._conn: Any = None
        self._lane = False
        self._pool: Any = None

    async def __aenter__(self) -> Any:
        be = self._be
        pool = self._pool = be._pool
        assert pool is not None
        if be._lane is not None and not be._lane_busy:
            be._lane_busy = self._lane = True
            self._conn = be._lane
            return self._conn
        if be._lane is None and be._lane_wanted and not be._lane_busy:
            be._lane_busy = True  # no second call takes a lane meanwhile
            try:
                conn = await pool.acquire()
            except BaseException:
                be._lane_busy = False
                raise
            self._conn = conn
            self._adopt(conn)
            return conn
        self._ctx = pool.acquire()
        return await self._ctx.__aenter__()

    def _adopt(self, conn: Any) -> None:
        """Make ``conn`` the lane, unless the backend closed meanwhile (then it is this
        call's own connection, released on exit)."""
        be = self._be
        be._lane_busy = False
        if be._lane is None and be._lane_wanted:
            be._lane = conn
            be._lane_busy = self._lane = True

    async def __aexit__(self, et: Any, exc: Any, tb: Any) -> None:
        be = self._be
        if self._ctx is not None:
            await self._ctx.__aexit__(et, exc, tb)
            return
        conn = self._conn
        if self._lane and be._lane is conn:
            if et is None and not conn.is_in_transaction():
                be._lane_busy = False
                return
            be._lane = None
            be._lane_busy = False
        await self._pool.release(conn)


class PostgresBackend(Backend):
    """``postgresql://user@host/db?schema=omniq`` - all four contracts on PostgreSQL.

    Several hosts (``postgresql://u@a:5432,b:5432/db?target_session_attrs=read-write``)
    make the pool connect to whichever is the writable primary, so a promoted standby
    takes over once the old primary is gone (asyncpg reads the DSN's hosts and
    ``target_session_attrs``).

    ``?pgbouncer=1`` (or ``pgbouncer=True``) is for a PgBouncer in transaction pooling
    mode, where a session's state does not outlive a transaction: no prepared statement
    cache, no ``search_path`` startup parameter (the schema must be the server-side
    ``search_path`` of the role or database, or set by PgBouncer's ``connect_query``;
    checked at connect) and no ``LISTEN``: waits poll every ``poll_interval`` seconds.
    """

    def __init__(
        self,
        url: str,
        *,
        schema: str | None = None,
        min_size: int = 1,
        max_size: int = 10,
        application_name: str = "omniq",
        synchronous_commit: str | None = None,
        pgbouncer: bool | None = None,
        poll_interval: float = 0.2,
        **options: Any,
    ) -> None:
        self.url = url
        clean, opts = split_options(url, ("schema", "synchronous_commit", "pgbouncer", "vacuum"))
        flag = opts.get("pgbouncer", "0").lower() in ("1", "true", "yes", "on")
        self.pgbouncer = flag if pgbouncer is None else pgbouncer
        """Behind a transaction-pooling PgBouncer: no session state (see the class)."""
        self.poll_interval: float | None = poll_interval if self.pgbouncer else None
        """Longest wait between checks for work and results when no LISTEN wakes them."""
        self._dsn = clean.replace("postgresql+asyncpg://", "postgresql://", 1)
        self._shown = redact_url(self._dsn)
        self.outage = Outage("postgresql", self._dsn, _log)
        """Logs losing and regaining the server once each (see ``omniq.storage._outage``)."""
        self.schema = schema or opts.get("schema", "omniq")
        self.application_name = application_name
        # Opt-in only: "off" acknowledges before the WAL is flushed (faster; a server
        # crash may lose the last few hundred ms of acknowledged changes). None keeps
        # the server's setting.
        self.synchronous_commit = synchronous_commit or opts.get("synchronous_commit")
        self._pool_opts: dict[str, Any] = {
            "min_size": min_size,
            "max_size": max_size,
            "reset": _keep_session,
            **({"statement_cache_size": 0} if self.pgbouncer else {}),
            **options,
        }
        if self.pgbouncer and self.synchronous_commit:
            raise StorageError(
                "synchronous_commit is a session setting, which PgBouncer's transaction "
                "pooling does not keep: set it on the role or database instead"
            )
        self.vacuumer = Vacuumer(
            self.call, self.schema, enabled=opts.get("vacuum", "auto").lower() != "off"
        )
        """Vacuums this schema's tables when dead rows pile up (``?vacuum=off``: never)."""
        self.work_channel = f"omniq:{self.schema}:work"
        self.result_channel = f"omniq:{self.schema}:result"
        self.cancel_channel = f"omniq:{self.schema}:cancel"
        self.push_channel = f"omniq_push_{uuid.uuid4().hex}"
        """This backend's own channel: handovers to its workers are sent here."""
        self.inboxes: dict[str, Callable[[list[ClaimedTask]], None]] = {}
        """Workers of this backend taking handovers: id -> inbox."""
        self._push_listened = False
        self._pool: asyncpg.Pool | None = None
        self._lane: Any = None
        """The pooled connection kept checked out for calls (``_Checkout``), or None."""
        self._lane_busy = False
        self._lane_wanted = False
        """Calls may take a lane: connected, and the pool holds two connections or more
        (with one, a held lane would leave nothing for a second concurrent call)."""
        self._listen_conn: Any = None
        self._listener: asyncio.Task[None] | None = None
        self._lost = asyncio.Event()
        self._work_listened = False
        """The work channel is (to be) listened to: ``listen_work`` was called."""
        self._work_listen_lock = asyncio.Lock()
        self.work_wake = Wake()
        """Wakes ``wait_for_work`` by queue name (the work channel's payload)."""
        self.result_wake = Wake()
        """Wakes result waits by task id (the result channel's payload)."""
        self.tasks = PgTaskQueue(self)
        self.results = PgResults(self)
        self.tasks.results = self.results
        self.events = PgEvents(self)
        self.schedules = PgSchedules(self)
        self.workers = PgWorkers(self)
        self.share_payload_limit(PayloadLimit("PostgreSQL", source="bytea field limit"))

    async def call(self, fn: Callable[[Any], Awaitable[T]]) -> T:
        """Run ``fn(connection)`` on a pooled connection.

        A pooled connection the server dropped (a restart, ``pg_terminate_backend``) fails
        on its next use: it is terminated, never handed back to the pool, and the call is
        retried on another connection (at most ``max_size`` + 1 times, once after a
        timeout). A connection that cannot be opened surfaces as BackendUnavailableError.
        """
        if self._pool is None:
            raise StorageError(
                "PostgresBackend is not connected: call connect() or use 'async with'"
            )
        tx_attempt = 0
        stale = 0
        while True:
            acquired = done = False
            out: Any = None
            try:
                async with _Checkout(self) as conn:
                    acquired = True
                    try:
                        out = await fn(conn)
                    except _CONN_ERRORS:
                        # Never hand a broken connection back to the pool (asyncpg may
                        # have released it already when it saw the connection close).
                        with contextlib.suppress(asyncpg.exceptions.InterfaceError):
                            conn.terminate()
                        raise
                    done = True
            except _RETRY_TX as exc:
                if tx_attempt == 2:
                    raise StorageError(f"postgresql error, three times: {exc}") from exc
                tx_attempt += 1
                continue
            except _CONN_ERRORS as exc:
                if done:  # dropped while going back to the pool: the call itself succeeded
                    self.outage.ok()
                    return out  # type: ignore[no-any-return]
                limit = 1 if isinstance(exc, TimeoutError) else self._pool.get_max_size() + 1
                if acquired and stale < limit:
                    stale += 1
                    continue
                self.outage.failed(exc)
                raise BackendUnavailableError(
                    f"postgresql unreachable at {self._shown}: {describe(exc)}"
                ) from exc
            except asyncpg.PostgresError as exc:
                raise StorageError(f"postgresql error: {exc}") from exc
            self.outage.ok()
            return out  # type: ignore[no-any-return]

    run = call
    """``call`` under the name tests and tools use: ``await be.run(lambda c: ...)``."""

    async def connect(self) -> None:
        if self._pool is not None:
            return
        settings = {"search_path": self.schema, "application_name": self.application_name}
        if self.pgbouncer:
            del settings["search_path"]
        if self.synchronous_commit:
            settings["synchronous_commit"] = self.synchronous_commit
        try:
            self._pool = await asyncpg.create_pool(
                self._dsn, server_settings=settings, **self._pool_opts
            )
        except _CONN_ERRORS as exc:
            raise BackendUnavailableError(
                f"postgresql unreachable at {self._shown}: {describe(exc)}"
            ) from exc
        _open_backends.add(self)
        self._lane_wanted = self._pool.get_max_size() >= 2
        self.payload_limit.engine = PG_FIELD_LIMIT
        try:
            await self.call(self._migrate)
            if self.pgbouncer:
                await self.call(self._check_schema)
                return
            await self._open_listener()
        except BaseException:
            await self.close()
            raise
        self._listener = asyncio.create_task(self._keep_listening(), name="omniq-pg-listener")

    async def _migrate(self, conn: Any) -> None:
        ident = _ident(self.schema)
        async with conn.transaction():
            await conn.execute(
                "SELECT pg_advisory_xact_lock(hashtext($1))", f"omniq-schema:{self.schema}"
            )
            await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {ident}")
            await conn.execute(
                f"CREATE TABLE IF NOT EXISTS {ident}.omniq_migrations "
                "(version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done = {r[0] for r in await conn.fetch(f"SELECT version FROM {ident}.omniq_migrations")}
            await conn.execute(f"SET LOCAL search_path TO {ident}")
            for version, ddl in MIGRATIONS:
                if version not in done:
                    await conn.execute(ddl)
                    await conn.execute(
                        f"INSERT INTO {ident}.omniq_migrations (version) VALUES ($1)", version
                    )

    async def _check_schema(self, conn: Any) -> None:
        """Behind PgBouncer the schema comes from the server side; refuse to run in
        another one (tables of the same names elsewhere would be used silently)."""
        current = await conn.fetchval("SELECT current_schema()")
        if current != self.schema:
            raise StorageError(
                f"behind PgBouncer the schema {self.schema!r} must be the server-side "
                f"search_path (ALTER ROLE ... SET search_path, or PgBouncer's "
                f"connect_query), but current_schema() is {current!r}"
            )

    def _on_notify(self, _conn: Any, _pid: int, channel: str, payload: str) -> None:
        if channel == self.work_channel:
            self.work_wake.notify((payload,))
        elif channel == self.push_channel:
            self._handover(payload)
        elif channel == self.cancel_channel:  # tasks cancelled (their workers stop them)
            if self.tasks is not None:
                self.tasks.cancel_feed.push(payload.split("\x1f"))
        else:
            self.result_wake.notify((payload,))

    def _handover(self, payload: str) -> None:
        """A task handed over to a worker of this backend (see ``enqueue_one`` in
        ``sql/queries.sql``): worker, token, lease end, base64 envelope."""
        worker, tok, lend, env = payload.split("\x1f", 3)
        inbox = self.inboxes.get(worker)
        if inbox is None:
            return  # closed meanwhile: close_inbox gave it back, or its lease lapses
        got = try_task(base64.b64decode(env))
        if not isinstance(got, Task):  # a record that does not decode: the lease lapses
            return  # and the next claim quarantines it
        task = with_state(got, TaskStatus.RUNNING, 1)
        inbox([claimed(task, tok, float(lend), worker)])
        self.work_wake.notify((push_key(worker),))

    def _on_lost(self, _conn: Any) -> None:
        self._lost.set()

    async def _open_listener(self) -> None:
        conn = await asyncpg.connect(
            self._dsn, server_settings={"application_name": self.application_name}
        )
        try:
            if self._work_listened:
                await conn.add_listener(self.work_channel, self._on_notify)
            if self._push_listened:
                await conn.add_listener(self.push_channel, self._on_notify)
            await conn.add_listener(self.result_channel, self._on_notify)
            await conn.add_listener(self.cancel_channel, self._on_notify)
        except BaseException:
            conn.terminate()
            raise
        conn.add_termination_listener(self._on_lost)
        self._listen_conn = conn
        self._lost.clear()

    async def listen_work(self) -> None:
        """LISTEN on the work channel from now on. The first wait for work (or for
        freed flow-limit slots) asks for it: a process that only enqueues never receives
        the work NOTIFY of every enqueue, its own and other producers'. Returns once the
        channel is listened to, so a wait that follows misses no NOTIFY."""
        if self._work_listened or self.pgbouncer:
            return
        async with self._work_listen_lock:
            await self._listen_work_once()

    async def _listen_work_once(self) -> None:
        if self._work_listened:  # another wait did while this one queued for the lock
            return
        self._work_listened = True  # a listener reopened from now on listens too
        conn = self._listen_conn
        if conn is None:
            return
        try:
            await conn.add_listener(self.work_channel, self._on_notify)
        except Exception:
            self._lost.set()  # reopen it (listening on the work channel); waits wake

    async def listen_push(self) -> bool:
        """LISTEN on this backend's handover channel from now on (once); False behind
        PgBouncer, where no LISTEN connection exists."""
        if self.pgbouncer:
            return False
        if self._push_listened:
            return True
        async with self._work_listen_lock:
            if not self._push_listened:
                self._push_listened = True  # a listener reopened from now on listens too
                conn = self._listen_conn
                if conn is not None:
                    try:
                        await conn.add_listener(self.push_channel, self._on_notify)
                    except Exception:
                        self._lost.set()  # reopen it (listening on the channel)
        return True

    async def _keep_listening(self) -> None:
        """Reopen the LISTEN connection when the server drops it; wake every waiter then,
        since notifications sent meanwhile were lost."""
        backoff = 0.05
        while True:
            await self._lost.wait()
            self.work_wake.notify()
            self.result_wake.notify()
            old, self._listen_conn = self._listen_conn, None
            if old is not None:
                with contextlib.suppress(Exception):
                    old.terminate()
            try:
                await self._open_listener()
            except Exception as exc:
                self.outage.failed(exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 1.0)
                continue
            backoff = 0.05
            self.outage.ok()
            self.work_wake.notify()
            self.result_wake.notify()

    async def close(self) -> None:
        _open_backends.discard(self)
        await self.vacuumer.close()
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._listener
            self._listener = None
        if self._listen_conn is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._listen_conn.close(), 5)
            self._listen_conn = None
        self._lane_wanted = False
        lane, self._lane = self._lane, None
        if lane is not None and not self._lane_busy and self._pool is not None:
            # (a call in flight on it releases it itself: the lane is no longer its)
            with contextlib.suppress(Exception):
                await self._pool.release(lane)
        self._lane_busy = False
        if self._pool is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._pool.close(), 5)
            self._pool = None

    async def drop(self) -> None:
        """Drop this backend's schema and everything in it (tests, reset)."""
        await self.call(lambda c: c.execute(f"DROP SCHEMA IF EXISTS {_ident(self.schema)} CASCADE"))
