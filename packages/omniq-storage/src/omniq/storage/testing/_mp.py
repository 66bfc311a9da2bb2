"""Child-process bodies for the multi-process conformance tests (spawned, so they
import this module fresh and open the store by URL)."""

from __future__ import annotations

import asyncio
from typing import Any

from omniq.models import TaskStatus
from omniq.storage import Completion, open_storage


def claim_all(url: str, barrier: Any, out: Any, batch: int) -> None:
    """Claim and complete tasks until none is left; report the ids claimed."""

    async def main() -> list[str]:
        claimed: list[str] = []
        async with open_storage(url) as store:
            assert store.tasks is not None
            q = store.tasks
            barrier.wait(60)
            while True:
                got = await q.claim(["default"], "w", limit=batch, lease=300)
                if not got:
                    if await q.count(status=TaskStatus.PENDING) == 0:
                        return claimed
                    continue
                claimed.extend(c.task.id for c in got)
                report = await q.complete([Completion(c.task.id, c.token) for c in got])
                assert not report.stale

    out.put(asyncio.run(main()))


def claim_schedules(url: str, barrier: Any, out: Any, at: float) -> None:
    """Call claim_due repeatedly; report the schedule ids this process fired."""

    async def main() -> list[str]:
        fired: list[str] = []
        async with open_storage(url) as store:
            assert store.schedules is not None
            barrier.wait(60)
            for _ in range(20):
                runs = await store.schedules.claim_due(at, limit=3)
                fired.extend(r.schedule.id for r in runs)
        return fired

    out.put(asyncio.run(main()))


def claim_rounds(url: str, barrier: Any, out: Any, rounds: int) -> None:
    """Claim (never completing, long leases) for ``rounds`` rounds; report the ids."""

    async def main() -> list[str]:
        claimed: list[str] = []
        async with open_storage(url) as store:
            assert store.tasks is not None
            barrier.wait(60)
            for _ in range(rounds):
                got = await store.tasks.claim(["default"], "w", limit=4, lease=300)
                claimed.extend(c.task.id for c in got)
        return claimed

    out.put(asyncio.run(main()))


def enqueue_unique(url: str, barrier: Any, out: Any, keys: int) -> None:
    """Enqueue one task per key (``mp-u-<i>``; even keys with a ``unique_for`` window,
    odd ones plain keys), one enqueue call each; report the ids returned, in key order."""
    from omniq.storage.testing.helpers import task

    async def main() -> list[str]:
        got: list[str] = []
        async with open_storage(url) as store:
            assert store.tasks is not None
            barrier.wait(60)
            for i in range(keys):
                window = 3600.0 if i % 2 == 0 else None
                [t] = await store.tasks.enqueue([task(key=f"mp-u-{i}", unique_for=window)])
                got.append(t.id)
        return got

    out.put(asyncio.run(main()))
