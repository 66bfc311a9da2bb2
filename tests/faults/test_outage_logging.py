"""What a worker logs while its server is down: the engine reports the outage once
("lost connection to ...") and once on the way back ("reconnected ... after N failed
attempts"); no traceback, no password, a handful of records however many retries ran;
every task still finishes after the restart.

Each engine runs on a private server with a password (Redis ``requirepass``, NATS
``--user/--pass``; PostgreSQL's trust authentication accepts and ignores it), stopped
for a few seconds while a worker is busy.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import Any

import anyio
import pytest

from omniq.core import OmniQ
from omniq.models import TaskStatus

from ._servers import PrivateNats, PrivatePostgres, PrivateRedis

pytestmark = [pytest.mark.anyio, pytest.mark.slow]
SECRET = "Outage-Pw-7Qx2"
OUTAGE = 3.0  # seconds the server stays down (the fault being injected, not a wait)
# The engine's two lines, plus what the outage costs and the worker says so: outcomes of
# the tasks in flight that could not be written (one WARNING per lost batch, then one
# INFO when their stale leases are discarded) and the event logger's rate-limited
# "dropped N events". Logging per retry, as before, meant dozens to hundreds of records.
MAX_RECORDS = 8


class _RedisWithPassword(PrivateRedis):
    @property
    def url(self) -> str:
        return f"redis://:{SECRET}@127.0.0.1:{self.port}/0?prefix=outage-{uuid.uuid4().hex[:8]}:"

    def command(self) -> list[str]:
        return [*super().command(), "--requirepass", SECRET]


class _NatsWithPassword(PrivateNats):
    @property
    def url(self) -> str:
        return f"nats://omniq:{SECRET}@127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        return [*super().command(), "--user", "omniq", "--pass", SECRET]


class _PostgresWithPassword(PrivatePostgres):
    @property
    def url(self) -> str:
        return f"postgresql://postgres:{SECRET}@127.0.0.1:{self.port}/postgres"


SERVERS: dict[str, Any] = {
    "redis": _RedisWithPassword,
    "nats": _NatsWithPassword,
    "postgres": _PostgresWithPassword,
}


async def outage_task(x: int) -> int:
    await asyncio.sleep(0.05)
    return x


def _ours(record: logging.LogRecord) -> bool:
    return record.name.split(".")[0] in ("omniq", "nats", "asyncpg", "redis")


@pytest.mark.parametrize("engine", list(SERVERS))
async def test_an_outage_is_logged_once_without_tracebacks_or_passwords(
    engine: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    server = SERVERS[engine]()
    try:
        server.start()
        url = server.url
        async with OmniQ(url, event_storage=url, lease_seconds=2) as oq:
            before = [(await oq.enqueue(outage_task, (i,))).id for i in range(20)]
            async with oq.worker(concurrency=4):
                for tid in before[:4]:
                    assert await oq.get_result(tid, wait=True, timeout=30) is not None
                start = len(caplog.records)
                await anyio.to_thread.run_sync(server.stop)
                down_at = time.monotonic()
                await anyio.sleep(OUTAGE)
                await anyio.to_thread.run_sync(server.start)
                after = [(await _retrying(lambda i=i: oq.enqueue(outage_task, (i,)))).id
                         for i in range(20, 30)]  # fmt: skip
                for tid in before + after:
                    r = await _retrying(lambda t=tid: oq.get_result(t, wait=True, timeout=30))
                    assert r is not None and r.status is TaskStatus.SUCCESS, tid
                assert time.monotonic() - down_at < 60
            outage = [r for r in caplog.records[start:] if _ours(r)]
    finally:
        server.cleanup()

    text = "\n".join(f"{r.name} {r.levelname} {r.getMessage()}" for r in outage)
    assert SECRET not in caplog.text and SECRET not in text
    assert not [r for r in caplog.records if r.exc_info], text  # no traceback at all
    assert len(outage) <= MAX_RECORDS, text
    lost = [r for r in outage if r.getMessage().startswith("lost connection to ")]
    back = [r for r in outage if r.getMessage().startswith("reconnected to ")]
    assert len(lost) == 1 and len(back) == 1, text
    assert lost[0].name == back[0].name and lost[0].name.startswith("omniq.storage.")
    assert "failed attempts" in back[0].getMessage()
    assert lost[0].created <= back[0].created


async def _retrying(fn: Any, deadline: float = 30.0) -> Any:
    """Calls made right after the restart may still meet the server starting up."""
    from omniq.models import BackendUnavailableError

    end = time.monotonic() + deadline
    while True:
        try:
            return await fn()
        except BackendUnavailableError:
            if time.monotonic() > end:
                raise
            await anyio.sleep(0.1)


async def _terminate_backends(name: str) -> int:
    import asyncpg

    conn = await asyncpg.connect("postgresql://postgres@127.0.0.1:5432/test")
    try:
        rows = await conn.fetch(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
            name,
        )
        return len(rows)
    finally:
        await conn.close()


async def test_postgres_connection_kills_are_absorbed(caplog: pytest.LogCaptureFixture) -> None:
    """The server drops every connection of a busy worker, five times: each dropped
    pooled connection is discarded (never reused mid-operation), calls go on with fresh
    ones, no call fails, nothing is logged above debug and every task finishes."""
    from omniq.storage import open_storage

    caplog.set_level(logging.DEBUG)
    name = f"omniq-kill-{uuid.uuid4().hex[:8]}"
    url = f"postgresql://postgres@127.0.0.1:5432/test?schema=omniq_kill_{uuid.uuid4().hex[:12]}"
    backend = open_storage(url, application_name=name)
    try:
        async with OmniQ(backend, event_storage=backend, lease_seconds=2) as oq:
            ids = [(await oq.enqueue(outage_task, (i,))).id for i in range(150)]
            async with oq.worker(concurrency=8):
                for _ in range(5):
                    await anyio.sleep(0.3)  # the kills' cadence: the fault being injected
                    assert await _terminate_backends(name) >= 1
                for tid in ids:
                    r = await oq.get_result(tid, wait=True, timeout=30)
                    assert r is not None and r.status is TaskStatus.SUCCESS, tid
    finally:
        async with backend:
            await backend.drop()  # type: ignore[attr-defined]
    records = [r for r in caplog.records if _ours(r)]
    text = "\n".join(f"{r.name} {r.levelname} {r.getMessage()}" for r in records)
    assert "another operation" not in text, text
    assert "unreachable" not in text, text  # no call surfaced BackendUnavailableError
    assert not [r for r in caplog.records if r.exc_info], text
    assert not [r for r in records if r.levelno >= logging.WARNING], text
