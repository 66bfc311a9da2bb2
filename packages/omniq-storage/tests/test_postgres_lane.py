"""The PostgreSQL backend's lane: one pooled connection kept checked out for calls that
find it free; a call that fails on it or is cancelled hands it back to the pool."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import anyio
import pytest

from omniq.models import StorageError
from omniq.storage._backends.postgres._backend import PostgresBackend
from omniq.storage.testing.helpers import poll_until

pytestmark = pytest.mark.anyio
BASE = "postgresql://postgres@127.0.0.1:5432/test"


@pytest.fixture
async def be() -> AsyncIterator[PostgresBackend]:
    name = f"omniq_pglane_{uuid.uuid4().hex[:10]}"
    backend = PostgresBackend(f"{BASE}?schema={name}", application_name=name)
    async with backend:
        yield backend
        await backend.drop()


def _pid(c: Any) -> Any:
    return c.fetchval("SELECT pg_backend_pid()")


async def test_calls_one_after_another_share_one_connection(be: PostgresBackend) -> None:
    pids = {await be.run(_pid) for _ in range(5)}
    assert len(pids) == 1
    assert be._lane is not None and not be._lane_busy


async def test_concurrent_calls_get_their_own_connections(be: PostgresBackend) -> None:
    inside = 0
    both = anyio.Event()
    pids: list[int] = []

    async def hold(c: Any) -> None:
        nonlocal inside
        inside += 1
        if inside == 2:
            both.set()
        await both.wait()
        pids.append(await c.fetchval("SELECT pg_backend_pid()"))

    async with anyio.create_task_group() as tg:
        tg.start_soon(be.run, hold)
        tg.start_soon(be.run, hold)
    assert len(set(pids)) == 2


async def test_a_failed_call_hands_the_lane_back_and_the_next_call_works(
    be: PostgresBackend,
) -> None:
    await be.run(_pid)
    lane = be._lane

    async def fail_in_transaction(c: Any) -> None:
        async with c.transaction():
            await c.execute("SELECT 1/0")

    with pytest.raises(StorageError):
        await be.run(fail_in_transaction)
    assert be._lane is None and not be._lane_busy

    async def leave_open(c: Any) -> None:
        await c.execute("BEGIN")

    await be.run(leave_open)  # an open transaction is rolled back, never kept
    assert await be.run(lambda c: c.fetchval("SELECT 1")) == 1

    async def in_transaction(c: Any) -> bool:
        return bool(c.is_in_transaction())

    assert not await be.run(in_transaction)
    assert be._lane is not None and be._lane is not lane


async def test_a_cancelled_call_leaves_a_working_backend(be: PostgresBackend) -> None:
    await be.run(_pid)
    started = anyio.Event()

    async def slow(c: Any) -> None:
        started.set()
        await c.execute("SELECT pg_sleep(30)")

    async def count_sleeping() -> int:
        return int(
            await be.run(
                lambda c: c.fetchval(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE application_name = $1 AND state = 'active' "
                    "AND query LIKE 'SELECT pg_sleep%'",
                    be.application_name,
                )
            )
        )

    async with anyio.create_task_group() as tg:
        tg.start_soon(be.run, slow)
        await started.wait()
        await poll_until(count_sleeping, lambda n: n == 1)
        tg.cancel_scope.cancel()
    await poll_until(count_sleeping, lambda n: n == 0)
    assert await be.run(lambda c: c.fetchval("SELECT 2")) == 2


async def test_close_with_the_lane_held_returns_promptly() -> None:
    name = f"omniq_pglane_{uuid.uuid4().hex[:10]}"
    backend = PostgresBackend(f"{BASE}?schema={name}")
    await backend.connect()
    try:
        await backend.run(_pid)
        assert backend._lane is not None
    finally:
        with anyio.fail_after(4):  # the pool's close waits 5 s for unreleased connections
            await backend.drop()
            await backend.close()
    assert backend._lane is None


async def test_a_pool_of_one_keeps_no_lane() -> None:
    name = f"omniq_pglane_{uuid.uuid4().hex[:10]}"
    async with PostgresBackend(f"{BASE}?schema={name}", min_size=1, max_size=1) as backend:
        async with anyio.create_task_group() as tg:
            for _ in range(3):
                tg.start_soon(backend.run, _pid)
        assert backend._lane is None
        await backend.drop()


async def test_only_a_process_that_waits_for_work_listens_to_the_work_channel(
    be: PostgresBackend,
) -> None:
    """A producer does not LISTEN on the work channel (it would receive the NOTIFY of
    every enqueue); its first wait for work does, and an enqueue elsewhere wakes it."""
    from omniq.models import Task, now
    from omniq.storage import open_storage

    assert be.tasks is not None
    await be.tasks.enqueue([Task(func="m:f")])
    assert be.work_channel not in await _channels(be)
    assert be.result_channel in await _channels(be)
    async with open_storage(be.url) as other:
        assert other.tasks is not None
        woke: list[float] = []

        async def wait() -> None:
            assert be.tasks is not None
            if await be.tasks.wait_for_work(["empty"], 10):
                woke.append(now())

        async with anyio.create_task_group() as tg:
            tg.start_soon(wait)
            await poll_until(_listened(be), bool)  # (one query at a time on that connection)
            assert be.work_channel in await _channels(be)
            sent = now()
            await other.tasks.enqueue([Task(func="m:f", queue="empty")])
        assert woke and woke[0] - sent < 5.0


async def _channels(be: PostgresBackend) -> list[str]:
    """The channels the backend's LISTEN connection listens to (asked on it)."""
    rows = await be._listen_conn.fetch("SELECT pg_listening_channels()")
    return [r[0] for r in rows]


def _listened(be: PostgresBackend) -> Callable[[], Awaitable[bool]]:
    async def done() -> bool:
        return be._work_listened and not be._work_listen_lock.locked()

    return done
