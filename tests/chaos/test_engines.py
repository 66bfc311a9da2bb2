"""Engine faults mid-run on PRIVATE servers (never the shared ones): three workers drain
a batch while the engine is restarted and, later, every client connection is killed
server-side. Workers reconnect; nothing is lost and no task completes twice. Re-runs are
allowed (an outcome that cannot be delivered during the outage is re-run after its
lease, at-least-once) and reported."""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import chaos_tasks as ct
import pytest
from chaos_fleet import Fleet, audit, record
from tests.faults._servers import PrivateNats, PrivatePostgres, PrivateRedis

from omniq.core import OmniQ
from omniq.models import TaskStatus
from omniq.storage import open_storage

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

N = 3000
LEASE = 2.0


@pytest.fixture
def engine(request: pytest.FixtureRequest) -> Iterator[tuple[str, Any]]:
    kind = request.param
    server: Any = {"redis": PrivateRedis, "postgres": PrivatePostgres, "nats": PrivateNats}[kind]()
    tag = uuid.uuid4().hex[:10]
    try:
        server.start()
        url = {
            "redis": f"{server.url}?prefix=chaos-{tag}:",
            "postgres": f"{server.url}?schema=chaos_{tag}",
            "nats": f"{server.url}?namespace=CHAOS{tag.upper()}",
        }[kind]
        yield url, server
    finally:
        server.cleanup()


async def _kill_connections(kind: str, server: Any) -> int:
    """Cut every client connection server-side (nats: a second restart, as its server
    has no per-client kill from a client)."""
    if kind == "redis":
        import redis.asyncio as aioredis

        r = aioredis.from_url(server.url)
        try:
            return int(await r.execute_command("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes"))
        finally:
            await r.aclose()
    if kind == "postgres":
        import asyncpg

        conn = await asyncpg.connect(server.url)
        try:
            rows = await conn.fetch(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE pid <> pg_backend_pid() AND backend_type = 'client backend'"
            )
            return len(rows)
        finally:
            await conn.close()
    server.restart()
    return -1


async def _done(url: str) -> int:
    with contextlib.suppress(Exception):
        async with open_storage(url) as b:
            assert b.tasks is not None
            return await b.tasks.count(status=TaskStatus.SUCCESS)
    return -1


@pytest.mark.parametrize("engine", ["redis", "postgres", "nats"], indirect=True)
async def test_engine_restart_and_connection_kills_lose_nothing(
    engine: tuple[str, Any], tmp_path: Path
) -> None:
    url, server = engine
    kind = url.split(":", 1)[0].replace("postgresql", "postgres")
    events = f"sqlite:///{tmp_path / 'events.db'}"
    ledger = tmp_path / "ledger"
    tags = [f"e{i}" for i in range(N)]
    async with OmniQ(url, url, events, lease_seconds=LEASE) as oq:
        tasks = [oq.build(ct.awork, (str(ledger), tag, 0.02), max_retries=10) for tag in tags]
        await oq.enqueue_many(tasks)
    cfg = {"url": url, "events": events, "lease": LEASE, "concurrency": 8}
    fleet = Fleet(cfg, tmp_path).start()
    t0 = time.monotonic()
    faults: list[str] = []
    try:
        end = t0 + 180
        while (done := await _done(url)) < N:
            assert time.monotonic() < end, f"stuck at {done}/{N}\n{fleet.logs()}"
            if not faults and done >= N // 4:
                server.restart()
                faults.append(f"restart@{done}")
            elif len(faults) == 1 and done >= N // 2:
                killed = await _kill_connections(kind, server)
                faults.append(f"conn-kill({killed})@{done}")
            await anyio.sleep(0.2)
        elapsed = time.monotonic() - t0
        assert fleet.stop() == [0, 0, 0], fleet.logs()
        assert not fleet.deaths
    finally:
        fleet.close()
    a = await audit(
        url, tasks, tags, ledger, workers=fleet.all_pids, interrupted=(), events_url=events
    )
    record(
        a.line(
            f"engine-faults {kind}",
            kills=0,
            seconds=elapsed,
            extra=f"faults={','.join(faults)} worker-restarts=0",
        )
    )
    assert len(faults) == 2
    assert not a.lost, (a.statuses, a.lost[:5])
    assert not a.duplicate_completions
