"""PostgreSQL backend (asyncpg): tasks, results, events and schedules.

Tasks are rows with indexed columns (queue, status, priority, id, eta, lease, key)
and the msgpack envelope as ``bytea``. ``claim`` is one ``UPDATE ... FROM (SELECT ...
FOR UPDATE SKIP LOCKED)`` statement that also takes over lapsed leases; completion,
cancellation and expiry resolve dependents inside the same statement (PL/pgSQL
functions, see ``_postgres_sql``). ``LISTEN/NOTIFY`` wakes waiting workers and result
waiters. Events are plain columns plus JSONB metadata.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import msgspec

from omniq.models import (
    BackendUnavailableError,
    ClaimedTask,
    StorageError,
    Task,
    TaskStatus,
    now,
)

from . import _postgres_sql as sql
from ._interfaces import (
    Backend,
    Completion,
    CompletionReport,
    DependencyPolicy,
    LeaseRef,
    RetryRequest,
    TaskQueueStorage,
)
from ._remote import (
    Waiters,
    claimed,
    decode_task,
    encode,
    split_options,
    wait_event,
    with_state,
    with_state_eta,
)

try:
    import asyncpg  # type: ignore[import-untyped]
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    from omniq.models import MissingExtraError

    raise MissingExtraError(
        "the postgresql backend needs: pip install 'omniq-storage[postgres]'"
    ) from exc

from ._postgres_store import PgEvents, PgResults, PgSchedules

__all__ = ["PostgresBackend"]

T = TypeVar("T")
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


async def _keep_session(_conn: Any) -> None:
    """Pool reset hook: skip asyncpg's default reset query (``RESET ALL; UNLISTEN *;
    CLOSE ALL; pg_advisory_unlock_all()``), one extra round trip per call. Pooled
    connections never LISTEN, change settings, open cursors or take session locks;
    asyncpg still rolls back an open transaction before calling this."""


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class _Base:
    def __init__(self, be: PostgresBackend) -> None:
        self._be = be

    async def _run(self, fn: Callable[[Any], Awaitable[T]]) -> T:
        return await self._be.run(fn)


class PgTaskQueue(_Base, TaskQueueStorage):
    """Task rows; claim/complete/cancel/expire are single statements."""

    async def enqueue(
        self, tasks: Sequence[Task], *, dependency_policy: DependencyPolicy = "cancel"
    ) -> builtins.list[Task]:
        if not tasks:
            return []
        if not any(t.depends_on for t in tasks):
            return await self._enqueue_plain(tasks, dependency_policy)
        return await self._enqueue_full(tasks, dependency_policy)

    async def _enqueue_plain(
        self, tasks: Sequence[Task], dependency_policy: DependencyPolicy
    ) -> builtins.list[Task]:
        """No dependencies: one INSERT ... ON CONFLICT DO NOTHING; the (rare) rows that
        collided with a stored id or live key go through ``omniq_enqueue``."""
        args = (
            [t.id for t in tasks],
            [t.queue for t in tasks],
            [t.priority for t in tasks],
            [t.eta for t in tasks],
            [t.expires_at for t in tasks],
            [t.key for t in tasks],
            [encode(t) for t in tasks],
            self._be.work_channel,
        )
        rows = await self._run(lambda c: c.fetch(sql.ENQUEUE_PLAIN, *args))
        inserted = {r[0] for r in rows}
        if len(inserted) == len(tasks):
            return [with_state(t, TaskStatus.PENDING, 0) for t in tasks]
        # An id repeated in the batch was inserted once; its later copies are not new.
        seen: set[str] = set()
        new: set[int] = set()
        for i, t in enumerate(tasks):
            if t.id in inserted and t.id not in seen:
                new.add(i)
            seen.add(t.id)
        rest = [t for i, t in enumerate(tasks) if i not in new]
        stored = iter(await self._enqueue_full(rest, dependency_policy))
        return [
            with_state(t, TaskStatus.PENDING, 0) if i in new else next(stored)
            for i, t in enumerate(tasks)
        ]

    async def _enqueue_full(
        self, tasks: Sequence[Task], dependency_policy: DependencyPolicy
    ) -> builtins.list[Task]:
        dep_idx: builtins.list[int] = []
        dep_on: builtins.list[str] = []
        for i, t in enumerate(tasks, 1):
            for d in dict.fromkeys(t.depends_on):  # a dependency listed twice is one edge
                dep_idx.append(i)
                dep_on.append(d)
        args = (
            [t.id for t in tasks],
            [t.queue for t in tasks],
            [t.priority for t in tasks],
            [t.eta for t in tasks],
            [t.expires_at for t in tasks],
            [t.key for t in tasks],
            [encode(t) for t in tasks],
            dep_idx,
            dep_on,
            dependency_policy,
            now(),
            self._be.work_channel,
        )
        rows = await self._run(
            lambda c: c.fetch(
                "SELECT * FROM omniq_enqueue($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12)", *args
            )
        )
        out: builtins.list[Task] = []
        for t, r in zip(tasks, rows, strict=True):
            if r["o_existing"]:
                stored = decode_task(r["o_envelope"])
                out.append(with_state_eta(stored, r["o_status"], r["o_attempt"], r["o_eta"]))
            else:
                out.append(with_state(t, r["o_status"], 0))
        return out

    async def claim(
        self, queues: Sequence[str], worker_id: str, *, limit: int = 1, lease: float = 30.0
    ) -> builtins.list[ClaimedTask]:
        if limit <= 0 or not queues:
            return []
        t = now()
        until = t + lease
        qs = builtins.list(queues)
        stmt = sql.CLAIM_ONE if len(qs) == 1 else sql.CLAIM_ANY
        rows = await self._run(lambda c: c.fetch(stmt, qs, t, limit, worker_id, until))
        rows = sorted(rows, key=lambda r: (-r["priority"], r["id"]))
        return [
            claimed(
                with_state_eta(
                    decode_task(r["envelope"]), TaskStatus.RUNNING, r["attempt"], r["eta"]
                ),
                r["token"],
                until,
                worker_id,
            )
            for r in rows
        ]

    async def renew(self, leases: Sequence[LeaseRef], lease: float) -> builtins.list[str]:
        if not leases:
            return []
        ids = [x.task_id for x in leases]
        toks = [x.token for x in leases]
        until = now() + lease
        rows = await self._run(lambda c: c.fetch(sql.RENEW, ids, toks, until))
        kept = {r["id"] for r in rows}
        return [i for i in ids if i not in kept]

    async def _report(self, row: Any, input_ids: Sequence[str] | None) -> CompletionReport:
        done = builtins.list(row["done"])
        cancelled_ids = builtins.list(row["cancelled"])
        cancelled: builtins.list[Task] = []
        if cancelled_ids:
            rows = await self._run(
                lambda c: c.fetch(
                    "SELECT id, attempt, envelope FROM tasks WHERE id = ANY($1::text[])",
                    cancelled_ids,
                )
            )
            by_id = {r["id"]: r for r in rows}
            cancelled = [
                with_state(
                    decode_task(by_id[i]["envelope"]), TaskStatus.CANCELLED, by_id[i]["attempt"]
                )
                for i in cancelled_ids
                if i in by_id
            ]
        stale: builtins.list[str] = []
        if input_ids is not None:
            dset = set(done)
            done = [i for i in input_ids if i in dset]
            stale = [i for i in input_ids if i not in dset]
        return CompletionReport(
            done=done, stale=stale, released=builtins.list(row["released"]), cancelled=cancelled
        )

    async def complete(
        self, completions: Sequence[Completion], *, dependency_policy: DependencyPolicy = "cancel"
    ) -> CompletionReport:
        if not completions:
            return CompletionReport()
        ids = [c.task_id for c in completions]
        toks = [c.token for c in completions]
        sts = [TaskStatus(c.status).value for c in completions]
        chan = self._be.work_channel
        row = await self._run(
            lambda c: c.fetchrow(
                "SELECT * FROM omniq_complete($1,$2,$3,$4,$5,$6)",
                ids,
                toks,
                sts,
                dependency_policy,
                now(),
                chan,
            )
        )
        return await self._report(row, ids)

    async def _requeue(
        self,
        ids: builtins.list[str],
        toks: builtins.list[str],
        etas: builtins.list[float | None],
        giveback: bool,
    ) -> builtins.list[str]:
        chan = self._be.work_channel
        rows = await self._run(
            lambda c: c.fetch(
                "SELECT * FROM omniq_requeue($1,$2,$3,$4,$5)", ids, toks, etas, giveback, chan
            )
        )
        ok = {r[0] for r in rows}
        return [i for i in ids if i not in ok]

    async def retry(self, requests: Sequence[RetryRequest]) -> builtins.list[str]:
        if not requests:
            return []
        return await self._requeue(
            [r.task_id for r in requests],
            [r.token for r in requests],
            [r.eta for r in requests],
            False,
        )

    async def release(self, leases: Sequence[LeaseRef]) -> builtins.list[str]:
        if not leases:
            return []
        return await self._requeue(
            [x.task_id for x in leases], [x.token for x in leases], [None] * len(leases), True
        )

    async def cancel(
        self, task_ids: Sequence[str], *, dependency_policy: DependencyPolicy = "cancel"
    ) -> CompletionReport:
        if not task_ids:
            return CompletionReport()
        ids = builtins.list(task_ids)
        chan = self._be.work_channel
        row = await self._run(
            lambda c: c.fetchrow(
                "SELECT * FROM omniq_cancel($1,$2,$3,$4)", ids, dependency_policy, now(), chan
            )
        )
        report = await self._report(row, None)
        dset = set(report.done)
        report.done = [i for i in ids if i in dset]
        return report

    async def reclaim_expired(self) -> builtins.list[str]:
        chan = self._be.work_channel
        rows = await self._run(lambda c: c.fetch("SELECT * FROM omniq_reclaim($1,$2)", now(), chan))
        return sorted(r[0] for r in rows)

    async def expire(self, *, dependency_policy: DependencyPolicy = "cancel") -> CompletionReport:
        chan = self._be.work_channel
        row = await self._run(
            lambda c: c.fetchrow(
                "SELECT * FROM omniq_expire($1,$2,$3)", dependency_policy, now(), chan
            )
        )
        return await self._report(row, None)

    @staticmethod
    def _task(r: Any) -> Task:
        return with_state_eta(decode_task(r["envelope"]), r["status"], r["attempt"], r["eta"])

    async def get(self, task_ids: Sequence[str]) -> builtins.list[Task | None]:
        if not task_ids:
            return []
        ids = builtins.list(task_ids)
        rows = await self._run(
            lambda c: c.fetch(
                "SELECT id, status, attempt, eta, envelope FROM tasks WHERE id = ANY($1::text[])",
                ids,
            )
        )
        by_id = {r["id"]: self._task(r) for r in rows}
        return [by_id.get(i) for i in ids]

    @staticmethod
    def _where(queue: str | None, status: TaskStatus | None) -> tuple[str, builtins.list[Any]]:
        conds: builtins.list[str] = []
        args: builtins.list[Any] = []
        if queue is not None:
            args.append(queue)
            conds.append(f"queue = ${len(args)}")
        if status is not None:
            args.append(TaskStatus(status).value)
            conds.append(f"status = ${len(args)}")
        return (" WHERE " + " AND ".join(conds)) if conds else "", args

    async def list(
        self,
        *,
        queue: str | None = None,
        status: TaskStatus | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> builtins.list[Task]:
        where, args = self._where(queue, status)
        q = (
            f"SELECT id, status, attempt, eta, envelope FROM tasks{where} ORDER BY id "
            f"LIMIT ${len(args) + 1} OFFSET ${len(args) + 2}"
        )
        rows = await self._run(lambda c: c.fetch(q, *args, limit, offset))
        return [self._task(r) for r in rows]

    async def count(self, *, queue: str | None = None, status: TaskStatus | None = None) -> int:
        where, args = self._where(queue, status)
        return int(
            await self._run(lambda c: c.fetchval(f"SELECT count(*) FROM tasks{where}", *args))
        )

    async def counts(self) -> dict[tuple[str, TaskStatus], int]:
        rows = await self._run(
            lambda c: c.fetch("SELECT queue, status, count(*) AS n FROM tasks GROUP BY 1, 2")
        )
        return {(r["queue"], TaskStatus(r["status"])): int(r["n"]) for r in rows}

    async def purge(self, *, finished_before: float, status: TaskStatus | None = None) -> int:
        only = None if status is None else TaskStatus(status).value

        async def run(c: Any) -> int:
            async with c.transaction():
                n = await c.fetchval(
                    "WITH d AS (DELETE FROM tasks WHERE finished_at < $1 AND status IN "
                    "('success','error','cancelled','expired') AND ($2::text IS NULL OR "
                    "status = $2) RETURNING id), "
                    "dd AS (DELETE FROM task_deps WHERE task_id IN (SELECT id FROM d)) "
                    "SELECT count(*) FROM d",
                    finished_before,
                    only,
                )
            return int(n)

        return await self._run(run)

    async def requeue(self, task_ids: Sequence[str]) -> builtins.list[str]:
        ids = builtins.list(dict.fromkeys(task_ids))
        if not ids:
            return []
        chan = self._be.work_channel

        async def run(c: Any) -> builtins.list[str]:
            # A task whose idempotency key a live task now holds stays put.
            rows = await c.fetch(
                "WITH u AS (UPDATE tasks t SET status = 'pending', attempt = 0, eta = NULL,"
                " token = NULL, worker_id = NULL, lease_expires_at = NULL, finished_at = NULL"
                " WHERE t.id = ANY($1::text[]) AND t.status = 'error' AND (t.key IS NULL OR"
                " NOT EXISTS (SELECT 1 FROM tasks o WHERE o.key = t.key AND o.status IN"
                " ('pending','running'))) RETURNING t.id, t.queue),"
                " n AS (SELECT pg_notify($2, q.queue) FROM (SELECT DISTINCT queue FROM u) q)"
                " SELECT u.id FROM u LEFT JOIN (SELECT count(*) FROM n) x ON true",
                ids,
                chan,
            )
            return [r[0] for r in rows]

        done = set(await self._run(run))
        return [i for i in ids if i in done]

    async def wait_for_work(self, queues: Sequence[str], timeout: float) -> bool:  # noqa: ASYNC109
        keys = builtins.list(queues)
        ev = self._be.waiters.register(keys)
        try:
            r = await self._run(lambda c: c.fetchrow(sql.WAIT_PROBE, keys))
            t = now()
            if r["ready_now"]:
                return True
            wake_at = t + timeout
            for v in (r["next_eta"], r["next_lease"]):
                if v is not None:
                    wake_at = min(wake_at, v)
            if wake_at <= t:
                return True
            if await wait_event(ev, wake_at - t):
                return True
            return wake_at < t + timeout
        finally:
            self._be.waiters.unregister(keys, ev)


class PostgresBackend(Backend):
    """``postgresql://user@host/db?schema=omniq`` - all four contracts on PostgreSQL."""

    def __init__(
        self,
        url: str,
        *,
        schema: str | None = None,
        min_size: int = 1,
        max_size: int = 10,
        application_name: str = "omniq",
        synchronous_commit: str | None = None,
        **options: Any,
    ) -> None:
        self.url = url
        clean, opts = split_options(url, ("schema", "synchronous_commit"))
        self._dsn = clean.replace("postgresql+asyncpg://", "postgresql://", 1)
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
            **options,
        }
        self.work_channel = f"omniq:{self.schema}:work"
        self.result_channel = f"omniq:{self.schema}:result"
        self._pool: asyncpg.Pool | None = None
        self._listen_conn: Any = None
        self._listener: asyncio.Task[None] | None = None
        self._lost = asyncio.Event()
        self.waiters = Waiters()
        self.result_waiters = Waiters()
        self.tasks = PgTaskQueue(self)
        self.results = PgResults(self)
        self.events = PgEvents(self)
        self.schedules = PgSchedules(self)

    async def run(self, fn: Callable[[Any], Awaitable[T]]) -> T:
        """Run ``fn(connection)`` on a pooled connection. A connection the server dropped
        is replaced and the call retried once; otherwise connection failures surface as
        BackendUnavailableError."""
        if self._pool is None:
            raise StorageError(
                "PostgresBackend is not connected: call connect() or use 'async with'"
            )
        for attempt in range(3):
            try:
                async with self._pool.acquire() as conn:
                    try:
                        return await fn(conn)
                    except _CONN_ERRORS:
                        conn.terminate()  # never hand a broken connection back to the pool
                        raise
            except _RETRY_TX:
                if attempt == 2:
                    raise
            except _CONN_ERRORS as exc:
                if attempt >= 1:
                    raise BackendUnavailableError(f"postgresql unreachable: {exc}") from exc
            except asyncpg.PostgresError as exc:
                raise StorageError(f"postgresql error: {exc}") from exc
        raise AssertionError("unreachable")  # pragma: no cover

    async def connect(self) -> None:
        if self._pool is not None:
            return
        settings = {"search_path": self.schema, "application_name": self.application_name}
        if self.synchronous_commit:
            settings["synchronous_commit"] = self.synchronous_commit
        try:
            self._pool = await asyncpg.create_pool(
                self._dsn, server_settings=settings, **self._pool_opts
            )
        except _CONN_ERRORS as exc:
            raise BackendUnavailableError(f"postgresql unreachable: {exc}") from exc
        try:
            await self.run(self._migrate)
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
            for version, ddl in sql.MIGRATIONS:
                if version not in done:
                    await conn.execute(ddl)
                    await conn.execute(
                        f"INSERT INTO {ident}.omniq_migrations (version) VALUES ($1)", version
                    )

    def _on_notify(self, _conn: Any, _pid: int, channel: str, payload: str) -> None:
        if channel == self.work_channel:
            self.waiters.wake(payload)
        else:
            self.result_waiters.wake(payload)

    def _on_lost(self, _conn: Any) -> None:
        self._lost.set()

    async def _open_listener(self) -> None:
        conn = await asyncpg.connect(
            self._dsn, server_settings={"application_name": self.application_name}
        )
        await conn.add_listener(self.work_channel, self._on_notify)
        await conn.add_listener(self.result_channel, self._on_notify)
        conn.add_termination_listener(self._on_lost)
        self._listen_conn = conn
        self._lost.clear()

    async def _keep_listening(self) -> None:
        """Reopen the LISTEN connection when the server drops it; wake every waiter then,
        since notifications sent meanwhile were lost."""
        backoff = 0.05
        while True:
            await self._lost.wait()
            self.waiters.wake_all()
            self.result_waiters.wake_all()
            old, self._listen_conn = self._listen_conn, None
            if old is not None:
                with contextlib.suppress(Exception):
                    old.terminate()
            try:
                await self._open_listener()
                backoff = 0.05
                self.waiters.wake_all()
                self.result_waiters.wake_all()
            except Exception:
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 1.0)

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._listener
            self._listener = None
        if self._listen_conn is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._listen_conn.close(), 5)
            self._listen_conn = None
        if self._pool is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._pool.close(), 5)
            self._pool = None

    async def drop(self) -> None:
        """Drop this backend's schema and everything in it (tests, reset)."""
        await self.run(lambda c: c.execute(f"DROP SCHEMA IF EXISTS {_ident(self.schema)} CASCADE"))
