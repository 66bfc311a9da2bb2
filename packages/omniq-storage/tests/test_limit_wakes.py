"""PostgreSQL, Redis and NATS tell a worker how long a held rate needs
(``limited_wait``), and wake workers pausing for held work when another worker frees
slots (``limits_freed`` / ``wait_for_limits``), across clients; the stores that stamp
rate-limited starts themselves tell when (``admitted``)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from omniq.storage import open_storage
from omniq.storage.testing.helpers import task
from omniq.storage.testing.servers import unique_url

pytestmark = pytest.mark.anyio


async def _fresh(kind: str) -> AsyncIterator[str]:
    """A store URL of its own on ``kind``, dropped after the test."""
    u = unique_url(kind)
    yield u
    async with open_storage(u) as be:
        await be.drop()  # type: ignore[attr-defined]


@pytest.fixture(params=["postgresql", "redis", "nats"])
async def url(request: pytest.FixtureRequest) -> AsyncIterator[str]:
    async for u in _fresh(request.param):
        yield u


async def test_a_rate_held_claim_tells_when_the_rate_has_room(url: str) -> None:
    async with open_storage(url) as be:
        q: Any = be.tasks
        await q.enqueue([task(rate_limit="2/s") for _ in range(3)])
        got = await q.claim(["default"], "w", limit=10)
        assert len(got) == 2
        assert q.limited and q.limited_wait is not None
        # The first start ages out of the (guarded) one-second window.
        assert 0.5 < q.limited_wait <= 1.05


async def test_a_cap_held_claim_tells_no_time(url: str) -> None:
    async with open_storage(url) as be:
        q: Any = be.tasks
        await q.enqueue([task(max_concurrency=1) for _ in range(2)])
        assert len(await q.claim(["default"], "w", limit=10)) == 1
        assert q.limited and q.limited_wait is None


async def test_freed_slots_wake_a_pausing_worker_of_another_client(url: str) -> None:
    async with open_storage(url) as waiter, open_storage(url) as freer:
        w: Any = waiter.tasks
        f: Any = freer.tasks
        woke: list[bool] = []

        async def wait() -> None:
            woke.append(await w.wait_for_limits(["default"], 30.0))

        with anyio.fail_after(20):
            async with anyio.create_task_group() as tg:
                tg.start_soon(wait)
                # Told until the waiter hears it (it may not be listening yet at first).
                while not woke:
                    await f.limits_freed(["default"])
                    await anyio.sleep(0.05)
        assert woke == [True]


async def test_without_news_the_wait_times_out(url: str) -> None:
    async with open_storage(url) as be:
        q: Any = be.tasks
        assert await q.wait_for_limits(["default"], 0.05) is False


@pytest.fixture(params=["redis", "nats", "sqlite", "file", "memory"])
async def stamping_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    embedded = {
        "sqlite": f"sqlite:///{tmp_path / 'q.db'}",
        "file": f"file://{tmp_path / 'store'}",
        "memory": "memory://",
    }
    if request.param in embedded:
        yield embedded[request.param]
        return
    async for u in _fresh(request.param):
        yield u


async def test_a_claim_that_counts_rate_starts_tells_when(stamping_url: str) -> None:
    """Every built-in store but PostgreSQL tells when it counted a claim's
    rate-limited starts (``admitted``: under its lock or in its write transaction,
    which the call may have waited for): the worker's late-start guard runs from
    there, not from when it asked."""
    async with open_storage(stamping_url) as be:
        q: Any = be.tasks
        await q.enqueue([task(rate_limit="2/s") for _ in range(3)])
        before = time.monotonic()
        assert len(await q.claim(["default"], "w", limit=10)) == 2
        after = time.monotonic()
        assert q.admitted is not None and before <= q.admitted <= after
        assert await q.claim(["default"], "w", limit=10) == []
        assert q.admitted is None  # it counted none
