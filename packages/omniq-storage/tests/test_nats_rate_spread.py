"""NATS spreads the redeliveries of work a claim held back by its rate: the first two
bursts' worth come back when the key has budget again, each further burst's worth one
burst step later, so the claims until then do not pull and hand back the key's whole
held backlog again each time its budget returns."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from omniq.storage import open_storage
from omniq.storage._backends.nats._records import consumer_of
from omniq.storage.testing.helpers import poll_until, task
from omniq.storage.testing.servers import unique_url

pytestmark = pytest.mark.anyio


@pytest.fixture
async def url() -> AsyncIterator[str]:
    u = unique_url("nats")
    yield u
    async with open_storage(u) as be:
        await be.drop()  # type: ignore[attr-defined]


async def test_a_rate_held_backlog_comes_back_a_burst_per_step(url: str) -> None:
    async with open_storage(url) as be:
        q: Any = be.tasks
        # 10/s: bursts of 10, one burst step is the whole (guarded) window, 1.03 s.
        await q.enqueue([task(rate_limit="10/s") for _ in range(40)])
        assert len(await q.claim(["default"], "w", limit=50)) == 10
        assert q.limited_wait is not None
        due = time.monotonic() + q.limited_wait
        [(_, subject)] = q._candidates(await q._subjects(), ["default"])
        engine = q._be
        back: list[Any] = []

        async def pull() -> int:
            # Pulled and left unacknowledged: they stay out of reach for the test's span.
            back.extend(await engine.js.pull(engine.work_stream, consumer_of(subject), 50))
            return len(back)

        # The first two bursts' worth (20 of the 30 held) come back with the budget...
        await poll_until(pull, lambda n: n >= 20, deadline=3.0)
        assert time.monotonic() < due + 0.7
        assert await pull() == 20
        # ... the last 10 one burst step later.
        await poll_until(pull, lambda n: n >= 30, deadline=4.0)
        assert time.monotonic() > due + 0.7
        assert await pull() == 30
