"""Per-engine fault tests for the PostgreSQL and Redis backends (NATS: restart here,
the rest in test_nats_faults.py).

- restart: a private server is stopped hard and started again mid-run; the client
  reconnects and nothing acknowledged (enqueued, completed, stored) is lost;
- kill: the server drops our connections (``pg_terminate_backend``/``CLIENT KILL``);
  operations recover (at worst one BackendUnavailableError) and wake-ups still work;
- exactly-once: 4 processes drain 5,000 tasks; each task is completed exactly once.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import anyio
import pytest

from omniq.models import BackendUnavailableError, TaskResult, TaskStatus, now
from omniq.storage import Backend, Completion, open_storage

from ._servers import (
    PrivateNats,
    PrivatePostgres,
    PrivateRedis,
    drop,
    fault_task,
    retrying,
    running,
)

pytestmark = pytest.mark.anyio
T = TypeVar("T")
ENGINES = ["redis", "postgres"]
SHARED = {
    "redis": "redis://127.0.0.1:6379/0",
    "postgres": "postgresql://postgres@127.0.0.1:5432/test",
    "nats": "nats://127.0.0.1:4222",
}


def _ns_url(base: str, engine: str) -> str:
    tag = uuid.uuid4().hex[:12]
    if engine == "redis":
        return f"{base}?prefix=omniq-fault-{tag}:"
    if engine == "nats":
        return f"{base}?namespace=OQFAULT{tag.upper()}"
    return f"{base}?schema=omniq_fault_{tag}"


@pytest.fixture
def private_url(request: pytest.FixtureRequest) -> Iterator[tuple[str, Any]]:
    engine = request.param
    servers = {"redis": PrivateRedis, "postgres": PrivatePostgres, "nats": PrivateNats}
    server = servers[engine]()
    with running(server) as url:
        yield _ns_url(url, engine), server


@pytest.mark.slow
@pytest.mark.parametrize("private_url", [*ENGINES, "nats"], indirect=True)
async def test_server_restart_loses_nothing_acknowledged(private_url: tuple[str, Any]) -> None:
    url, server = private_url
    async with open_storage(url) as backend:
        q, rs = backend.tasks, backend.results
        assert q is not None and rs is not None
        tasks = [fault_task() for _ in range(300)]
        await q.enqueue(tasks)
        first = await q.claim(["default"], "w1", limit=100, lease=60)
        report = await q.complete([Completion(c.task.id, c.token) for c in first])
        acked = set(report.done)
        await rs.put([TaskResult(task_id=i, status=TaskStatus.SUCCESS) for i in acked])
        held = await q.claim(["default"], "w1", limit=50, lease=60)  # in flight at restart

        await anyio.to_thread.run_sync(server.restart)

        # In-flight leases survive the restart and can still be completed.
        rep2 = await retrying(lambda: q.complete([Completion(c.task.id, c.token) for c in held]))
        assert sorted(rep2.done) == sorted(c.task.id for c in held)
        acked |= set(rep2.done)
        while True:
            batch = await retrying(lambda: q.claim(["default"], "w2", limit=100, lease=60))
            if not batch:
                break
            rep = await retrying(
                lambda b=batch: q.complete([Completion(c.task.id, c.token) for c in b])
            )
            acked |= set(rep.done)
        assert acked == {t.id for t in tasks}
        assert await retrying(lambda: q.count(status=TaskStatus.SUCCESS)) == 300
        got = await retrying(lambda: rs.get([t.id for t in tasks]))
        assert {r.task_id for r in got if r is not None} >= set(report.done)
        await retrying(lambda: drop(backend))


async def _kill_connections(engine: str, name: str) -> int:
    if engine == "redis":
        import redis.asyncio as aioredis

        r = aioredis.from_url(SHARED["redis"])
        try:
            killed = 0
            for c in await r.client_list():
                if c.get("name") == name:
                    killed += int(await r.client_kill_filter(_id=c["id"]))
            return killed
        finally:
            await r.aclose()
    import asyncpg

    conn = await asyncpg.connect(SHARED["postgres"])
    try:
        rows = await conn.fetch(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
            name,
        )
        return len(rows)
    finally:
        await conn.close()


@pytest.fixture
async def named_backend(request: pytest.FixtureRequest) -> AsyncIterator[tuple[Backend, str, str]]:
    engine = request.param
    name = f"omniq-fault-{uuid.uuid4().hex[:8]}"
    url = _ns_url(SHARED[engine], engine)
    opt = {"client_name": name} if engine == "redis" else {"application_name": name}
    import importlib

    from omniq.storage import BACKENDS

    mod, _, cls = BACKENDS["redis" if engine == "redis" else "postgresql"].target.partition(":")
    backend: Backend = getattr(importlib.import_module(mod), cls)(url, **opt)
    async with backend:
        try:
            yield backend, engine, name
        finally:
            await retrying(lambda: drop(backend))


@pytest.mark.parametrize("named_backend", ENGINES, indirect=True)
async def test_killed_connections_recover(named_backend: tuple[Backend, str, str]) -> None:
    backend, engine, name = named_backend
    q = backend.tasks
    assert q is not None
    await q.enqueue([fault_task()])  # the pool and listener are connected and in use
    assert await _kill_connections(engine, name) >= 1

    failures = 0

    async def attempt(fn: Callable[[], Awaitable[T]]) -> T:
        nonlocal failures
        try:
            return await fn()
        except BackendUnavailableError:
            failures += 1
            return await fn()  # succeeds on retry

    [c] = await attempt(lambda: q.claim(["default"], "w", lease=30))
    rep = await attempt(lambda: q.complete([Completion(c.task.id, c.token)]))
    assert rep.done == [c.task.id]
    assert failures <= 1

    # The notification listener reconnected too: a waiting worker is woken.
    async with open_storage(backend.url) as other:
        assert other.tasks is not None
        await _kill_connections(engine, name)
        woke: list[bool] = []

        async def waiter() -> None:
            woke.append(await attempt(lambda: q.wait_for_work(["default"], 10)))

        async with anyio.create_task_group() as tg:
            tg.start_soon(waiter)
            start = now()
            await anyio.sleep(0.3)  # let the listener notice the kill and reconnect
            await other.tasks.enqueue([fault_task()])
        assert woke == [True] and now() - start < 5


@pytest.mark.slow
@pytest.mark.parametrize("engine", [*ENGINES, "nats"])
async def test_four_processes_claim_each_task_exactly_once(engine: str, tmp_path: Path) -> None:
    url = _ns_url(SHARED[engine], engine)
    async with open_storage(url) as backend:
        q = backend.tasks
        assert q is not None
        ids: list[str] = []
        for _ in range(10):
            batch = [fault_task("eo") for _ in range(500)]
            ids += [t.id for t in batch]
            await q.enqueue(batch)
        script = Path(__file__).with_name("_claimer.py")
        outs = [tmp_path / f"out{i}" for i in range(4)]
        procs = [subprocess.Popen([sys.executable, str(script), url, "eo", str(o)]) for o in outs]  # noqa: ASYNC220
        for p in procs:
            assert await anyio.to_thread.run_sync(lambda p=p: p.wait(120)) == 0
        seen: list[str] = []
        for o in outs:
            text = o.read_text()
            seen += text.split("\n") if text else []
        assert len(seen) == 5000
        assert sorted(seen) == sorted(ids)
        if engine == "nats":
            # Each NATS claim is several round trips, so the four always overlap; Redis
            # and PostgreSQL may drain everything before the last process has started.
            assert sum(1 for o in outs if o.read_text()) >= 2  # they really competed
        assert await q.count(queue="eo", status=TaskStatus.SUCCESS) == 5000
        await drop(backend)
