"""How the conformance suite opens each backend: one ``BackendSpec`` per backend.

A spec opens an isolated, connected store for one test (a fresh directory, a unique
fsspec root, a unique schema/key prefix/stream...) and cleans up afterwards. Its
capability flags select the tests the backend can legitimately take part in.
``register_spec`` adds a spec to ``SPECS``, the set the pytest plugin parametrizes
over; ``builtin_specs()`` are the specs of omniq-storage's own backends.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio

from omniq.storage import Backend, open_storage

from .servers import drop_namespace, unique_url

__all__ = [
    "SPECS",
    "BackendSpec",
    "CallerTx",
    "builtin_specs",
    "ids_with",
    "register_builtin_specs",
    "register_spec",
    "register_specs",
]


@dataclass(frozen=True)
class CallerTx:
    """A caller's database connection inside an open transaction, for the
    transactional-enqueue tests: pass ``connection`` to ``enqueue_in_transaction``,
    then ``commit()`` or ``rollback()``."""

    connection: object
    commit: Callable[[], Awaitable[None]]
    rollback: Callable[[], Awaitable[None]]


@dataclass(frozen=True)
class BackendSpec:
    """How to open one isolated store of a backend, and what it can do."""

    id: str
    """The test id (``-k <id>`` selects it; ``OMNIQ_CONFORMANCE_BACKENDS`` lists ids)."""
    url: Callable[[Path], str]
    """A URL naming a fresh store for a test (``tmp_path`` is the test's own directory);
    opening the same URL again, from this or another process, reaches the same store."""
    shared: bool = False
    """Several backend objects (connections) in one process may use one store at once."""
    multiprocess: bool = False
    """Several OS processes may share one store (they open ``url`` themselves, so the
    backend must be declared as an ``omniq.backends`` entry point)."""
    persistent: bool = False
    """Data survives closing the backend and opening the URL again."""
    cleanup: Callable[[str], None] | None = None
    """Deletes what a test left under ``url`` (server backends)."""
    hands_over: bool = False
    """``wait_for_push`` leases a task enqueued while a worker waits to that worker."""
    stands_by: bool = False
    """``claim_standby`` claims a task to run in a running capped claim's slot once that
    run ends (``TestStandby``)."""
    waiter_registered: Callable[[Backend, str], Awaitable[None]] | None = None
    """Returns once the idle registration of the waiting worker (by id) is stored, so
    the handover tests enqueue only after it (backends that hand over)."""
    transaction: Callable[[str], contextlib.AbstractAsyncContextManager[CallerTx]] | None = None
    """Opens a connection of the caller's kind to the database behind ``url`` with a
    transaction begun (``enqueue_in_transaction`` joins it); None: the backend refuses
    transactional enqueue with ``TransactionalEnqueueError``."""

    @property
    def transactional(self) -> bool:
        """The backend joins a caller's transaction (``transaction`` is set)."""
        return self.transaction is not None

    @contextlib.asynccontextmanager
    async def open(self, tmp_path: Path) -> AsyncIterator[tuple[Backend, str]]:
        """A connected backend on a fresh store, and its URL; cleaned up on exit."""
        url = self.url(tmp_path)
        try:
            async with open_storage(url) as backend:
                yield backend, url
        finally:
            if self.cleanup is not None:
                self.cleanup(url)


SPECS: dict[str, BackendSpec] = {}
"""Spec id -> spec: the backends the conformance suite runs against."""


def register_spec(spec: BackendSpec) -> None:
    """Run the conformance suite against ``spec`` too (replaces a spec of the same id)."""
    SPECS[spec.id] = spec


def register_specs(specs: Iterable[BackendSpec]) -> None:
    """``register_spec`` each of ``specs``."""
    for spec in specs:
        register_spec(spec)


def ids_with(*capabilities: str) -> list[str]:
    """Ids of the registered specs having every named capability flag."""
    return [i for i, s in SPECS.items() if all(getattr(s, c) for c in capabilities)]


def _memfs_cleanup(url: str) -> None:
    import fsspec

    fs = fsspec.filesystem("memory")
    root = url.split("://", 1)[1]
    if fs.exists(root):
        fs.rm(root, recursive=True)


async def _redis_waiter_registered(store: Backend, worker: str) -> None:
    """Redis keeps an idle registration in ``<prefix>iw:<queue>``, as a member starting
    with the worker id."""
    backend: Any = store
    key = f"{backend.prefix}iw:default"
    deadline = anyio.current_time() + 5.0
    while worker.encode() not in [
        m.split(b"\x1f", 1)[0] for m in await backend.redis.zrange(key, 0, -1)
    ]:
        assert anyio.current_time() < deadline, "the waiter never registered"
        await anyio.sleep(0.01)


async def _postgres_waiter_registered(store: Backend, worker: str) -> None:
    """PostgreSQL keeps an idle registration as a row of ``idle_workers``."""
    backend: Any = store

    async def registered(conn: Any) -> bool:
        return bool(
            await conn.fetchval(
                "SELECT EXISTS (SELECT 1 FROM idle_workers WHERE worker_id = $1 "
                "AND queue = 'default')",
                worker,
            )
        )

    deadline = anyio.current_time() + 5.0
    while not await backend.run(registered):
        assert anyio.current_time() < deadline, "the waiter never registered"
        await anyio.sleep(0.01)


@contextlib.asynccontextmanager
async def _sqlite_transaction(url: str) -> AsyncIterator[CallerTx]:
    """A ``sqlite3`` connection to the store's file, in a transaction."""
    import sqlite3

    from omniq.storage._backends.sqlite._conn import db_path

    conn = sqlite3.connect(db_path(url), timeout=30, check_same_thread=False)
    conn.execute("BEGIN")

    async def commit() -> None:
        conn.commit()

    async def rollback() -> None:
        conn.rollback()

    try:
        yield CallerTx(conn, commit, rollback)
    finally:
        conn.close()


@contextlib.asynccontextmanager
async def _postgres_transaction(url: str) -> AsyncIterator[CallerTx]:
    """An asyncpg connection to the store's database (not its schema), in a
    transaction."""
    import asyncpg  # type: ignore[import-untyped]

    conn = await asyncpg.connect(url.split("?", 1)[0])
    tx = conn.transaction()
    await tx.start()

    async def commit() -> None:
        await tx.commit()

    async def rollback() -> None:
        await tx.rollback()

    try:
        yield CallerTx(conn, commit, rollback)
    finally:
        await conn.close()


def builtin_specs() -> list[BackendSpec]:
    """The specs of omniq-storage's own backends (the server ones use the test servers
    of ``omniq.storage.testing.servers``, one namespace per test)."""
    return [
        BackendSpec("memory", lambda tmp: "memory://", stands_by=True),
        BackendSpec(
            "file-local",
            lambda tmp: (tmp / "store").as_uri(),
            shared=True,
            multiprocess=True,
            persistent=True,
            stands_by=True,
        ),
        BackendSpec(
            "file-memfs",
            lambda tmp: f"file+memory://omniq-test-{uuid.uuid4().hex}",
            persistent=True,
            cleanup=_memfs_cleanup,
            stands_by=True,
        ),
        BackendSpec(
            "sqlite",
            lambda tmp: f"sqlite:///{tmp / 'omniq.db'}",
            shared=True,
            multiprocess=True,
            persistent=True,
            stands_by=True,
            transaction=_sqlite_transaction,
        ),
        BackendSpec(
            "redis",
            lambda tmp: unique_url("redis"),
            shared=True,
            multiprocess=True,
            persistent=True,
            cleanup=drop_namespace,
            hands_over=True,
            stands_by=True,
            waiter_registered=_redis_waiter_registered,
        ),
        BackendSpec(
            "postgres",
            lambda tmp: unique_url("postgresql"),
            shared=True,
            multiprocess=True,
            persistent=True,
            cleanup=drop_namespace,
            hands_over=True,
            stands_by=True,
            waiter_registered=_postgres_waiter_registered,
            transaction=_postgres_transaction,
        ),
        BackendSpec(
            "nats",
            lambda tmp: unique_url("nats"),
            shared=True,
            multiprocess=True,
            persistent=True,
            cleanup=drop_namespace,
            stands_by=True,
        ),
    ]


def register_builtin_specs() -> None:
    """Run the conformance suite against every omniq-storage backend."""
    register_specs(builtin_specs())
