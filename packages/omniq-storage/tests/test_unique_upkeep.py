"""Upkeep of unique-job windows: what an engine keeps for a key held past its holder's
end (PostgreSQL and SQLite rows of ``task_unique``, the Redis ``keys`` field and its
``ukeys`` entry) is dropped by ``maintain`` once the window has ended, and kept while
the window is open."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from omniq.models import Task, now
from omniq.storage import Backend, Completion, open_storage
from omniq.storage.testing.helpers import poll_until
from omniq.storage.testing.servers import unique_url

pytestmark = pytest.mark.anyio


async def _pg_keys(be: Any) -> set[str]:
    rows = await be.tasks._call(lambda c: c.fetch("SELECT key FROM task_unique"))
    return {r[0] for r in rows}


async def _sqlite_keys(be: Any) -> set[str]:
    rows = await be.tasks._db.run(lambda c: c.execute("SELECT key FROM task_unique").fetchall())
    return {r[0] for r in rows}


async def _redis_keys(be: Any) -> set[str]:
    held = await be.redis.hkeys(f"{be.prefix}keys")
    swept = await be.redis.zrange(f"{be.prefix}ukeys", 0, -1)
    return {k.decode() for k in held} | {f"ukeys:{k.decode()}" for k in swept}


@pytest.fixture(params=["postgresql", "sqlite", "redis"])
async def engine(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[Backend, Callable[[Any], Awaitable[set[str]]]]]:
    kind = request.param
    url = f"sqlite:///{tmp_path}/u.db" if kind == "sqlite" else unique_url(kind)
    keys = {"postgresql": _pg_keys, "sqlite": _sqlite_keys, "redis": _redis_keys}[kind]
    be = open_storage(url)
    async with be:
        try:
            yield be, keys
        finally:
            if kind != "sqlite":
                await be.drop()  # type: ignore[attr-defined]


async def test_maintain_drops_ended_windows_and_keeps_open_ones(
    engine: tuple[Backend, Callable[[Any], Awaitable[set[str]]]],
) -> None:
    be, keys = engine
    q = be.tasks
    assert q is not None
    tag = uuid.uuid4().hex[:8]
    short, long = f"short-{tag}", f"long-{tag}"
    # The short window ends 0.5 s from now, the long one in an hour.
    ending = Task(func="m:f", key=short, unique_for=60.0, created_at=now() - 59.5)
    lasting = Task(func="m:f", key=long, unique_for=3600.0)
    await q.enqueue([ending, lasting])
    claims = await q.claim(["default"], "w", limit=2)
    assert len(claims) == 2
    await q.complete([Completion(c.task.id, c.token) for c in claims])
    held = await keys(be)
    assert short in held and long in held  # both ended inside their windows
    end = ending.created_at + 60.0

    async def clock() -> float:
        return now()

    await poll_until(clock, lambda t: t > end, deadline=10)
    await q.maintain()
    left = await keys(be)
    assert short not in left and f"ukeys:{short}" not in left
    assert long in left
    # The key is free again; the long window still returns its holder.
    fresh = Task(func="m:f", key=short)
    [got] = await q.enqueue([fresh])
    assert got.id == fresh.id
    [held_long] = await q.enqueue([Task(func="m:f", key=long)])
    assert held_long.id == lasting.id
