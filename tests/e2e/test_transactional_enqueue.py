"""``OmniQ.enqueue(..., connection=...)`` with real driver transactions: asyncpg,
psycopg 3 (async and sync) on PostgreSQL, sqlite3 on SQLite. Rollback leaves no task;
commit makes it visible and a worker runs it; other stores refuse with
``TransactionalEnqueueError``."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]
import psycopg
import pytest

from omniq.core import OmniQ
from omniq.models import EventType, TaskStatus, TransactionalEnqueueError
from omniq.storage.testing.servers import drop_namespace, unique_url

pytestmark = pytest.mark.anyio

ADD = "e2e_tasks:add"


@pytest.fixture
def pg_url() -> object:
    url = unique_url("postgresql")
    yield url
    drop_namespace(url)


def _dsn(url: str) -> str:
    return url.split("?", 1)[0]


async def _ran(oq: OmniQ, task_id: str) -> int:
    async with oq.worker(concurrency=1):
        res = await oq.get_result(task_id, wait=True, timeout=20)
    assert res is not None and res.status is TaskStatus.SUCCESS
    return int(res.value)


async def test_asyncpg_rollback_and_commit(pg_url: str) -> None:
    async with OmniQ(pg_url) as oq:
        conn = await asyncpg.connect(_dsn(pg_url))
        try:
            async with conn.transaction():
                await conn.execute("CREATE TEMP TABLE orders (id int)")
            tx = conn.transaction()
            await tx.start()
            await conn.execute("INSERT INTO orders VALUES (1)")
            lost = await oq.enqueue(ADD, (1, 2), connection=conn)
            await tx.rollback()
            assert await oq.get_task(lost.id) is None
            async with conn.transaction():
                await conn.execute("INSERT INTO orders VALUES (2)")
                kept = await oq.enqueue(ADD, (2, 3), connection=conn)
                assert await oq.get_task(kept.id) is None  # not committed yet
                # The caller's search_path is left as it was.
                assert await conn.fetchval("SHOW search_path") == '"$user", public'
        finally:
            await conn.close()
        assert await _ran(oq, kept.id) == 5


async def test_psycopg_async_rollback_and_commit(pg_url: str) -> None:
    async with OmniQ(pg_url) as oq:
        async with await psycopg.AsyncConnection.connect(_dsn(pg_url)) as conn:
            [lost] = await oq.enqueue_many([(ADD, (1, 1))], connection=conn)
            await conn.rollback()
            assert await oq.get_task(lost.id) is None
            async with conn.transaction():
                [kept] = await oq.enqueue_many([(ADD, (4, 4))], connection=conn)
            assert (await oq.get_task(kept.id)) is not None
        assert await _ran(oq, kept.id) == 8


def test_psycopg_sync_rollback_commit_and_worker_wake(pg_url: str) -> None:
    with OmniQ(pg_url) as oq, psycopg.connect(_dsn(pg_url)) as conn:
        lost = oq.enqueue_sync(ADD, (1, 1), connection=conn)
        conn.rollback()
        assert oq.get_task_sync(lost.id) is None
        with oq.worker(concurrency=1):
            kept = oq.enqueue_sync(ADD, (5, 5), connection=conn)
            conn.commit()  # NOTIFY is delivered now and wakes the worker
            res = oq.get_result_sync(kept.id, wait=True, timeout=20)
        assert res is not None and res.value == 10


async def test_psycopg_autocommit_enqueues_at_once(pg_url: str) -> None:
    async with OmniQ(pg_url) as oq:
        conn = await psycopg.AsyncConnection.connect(_dsn(pg_url), autocommit=True)
        async with conn:
            t = await oq.enqueue(ADD, (1, 2), connection=conn)
            assert (await oq.get_task(t.id)) is not None


def test_sqlite3_rollback_and_commit(tmp_path: Path) -> None:
    db = tmp_path / "app.db"
    with OmniQ(f"sqlite:///{db}") as oq:
        conn = sqlite3.connect(db, check_same_thread=False)
        conn.execute("CREATE TABLE orders (id INTEGER)")
        conn.execute("INSERT INTO orders VALUES (1)")
        lost = oq.enqueue_sync(ADD, (1, 1), connection=conn)
        conn.rollback()
        assert oq.get_task_sync(lost.id) is None
        conn.execute("INSERT INTO orders VALUES (2)")
        kept = oq.enqueue_sync(ADD, (6, 6), connection=conn)
        assert oq.get_task_sync(kept.id) is None  # a read: WAL readers do not wait
        with oq.worker(concurrency=1):
            # The worker's claims wait for this transaction's write lock: commit now.
            conn.commit()
            res = oq.get_result_sync(kept.id, wait=True, timeout=20)
        assert res is not None and res.value == 12
        assert conn.execute("SELECT count(*) FROM orders").fetchone()[0] == 1
        conn.close()


def test_sqlite3_connection_to_another_file_is_refused(tmp_path: Path) -> None:
    with OmniQ(f"sqlite:///{tmp_path / 'q.db'}") as oq:
        other = sqlite3.connect(tmp_path / "other.db", check_same_thread=False)
        with pytest.raises(TransactionalEnqueueError, match="not the task store"):
            oq.enqueue_sync(ADD, (1, 1), connection=other)
        other.close()


@pytest.mark.parametrize("url", ["memory://", "redis", "nats", "file"])
def test_other_stores_refuse_naming_the_alternative(url: str, tmp_path: Path) -> None:
    if url == "file":
        url = (tmp_path / "store").as_uri()
    elif url != "memory://":
        url = unique_url(url)
    try:
        with OmniQ(url) as oq:
            conn = sqlite3.connect(":memory:", check_same_thread=False)
            with pytest.raises(TransactionalEnqueueError, match="enqueue_on_commit"):
                oq.enqueue_sync(ADD, (1, 1), connection=conn)
            assert oq.list_tasks_sync() == []
    finally:
        if "://" in url and not url.startswith(("memory", "file")):
            drop_namespace(url)


@pytest.mark.parametrize("engine", ["sqlite", "postgres"])
async def test_enqueued_events_commit_and_roll_back_with_the_task(
    engine: str, tmp_path: Path, pg_url: str
) -> None:
    """With the event store in the task store's backend, the ``enqueued`` event is
    written in the caller's transaction too."""
    url = f"sqlite:///{tmp_path / 'q.db'}" if engine == "sqlite" else pg_url
    async with OmniQ(url, event_storage=url) as oq:
        if engine == "sqlite":
            conn: object = sqlite3.connect(tmp_path / "q.db", check_same_thread=False)
        else:
            conn = await asyncpg.connect(_dsn(pg_url))
        try:
            ids = []
            for commit in (False, True):
                if engine == "sqlite":
                    t = await oq.enqueue(ADD, (1, 1), connection=conn)
                    conn.commit() if commit else conn.rollback()  # type: ignore[attr-defined]
                else:
                    tx = conn.transaction()  # type: ignore[attr-defined]
                    await tx.start()
                    t = await oq.enqueue(ADD, (1, 1), connection=conn)
                    await (tx.commit() if commit else tx.rollback())
                ids.append(t.id)
            assert await oq.get_events(ids[0]) == []
            [ev] = await oq.get_events(ids[1])
            assert ev.type is EventType.ENQUEUED
        finally:
            close = conn.close()  # type: ignore[attr-defined]
            if close is not None:
                await close


@pytest.mark.filterwarnings("ignore::omniq.events.bridge.SyncInAsyncWarning")
def test_asyncpg_connection_from_the_blocking_api_is_refused_clearly(pg_url: str) -> None:
    import asyncio

    async def scenario() -> None:
        conn = await asyncpg.connect(_dsn(pg_url))
        try:
            with OmniQ(pg_url) as oq:  # its home loop is OmniQ's own thread
                async with conn.transaction():
                    with pytest.raises(TransactionalEnqueueError, match="another event loop"):
                        oq.enqueue_sync(ADD, (1, 1), connection=conn)
        finally:
            await conn.close()

    asyncio.run(scenario())
