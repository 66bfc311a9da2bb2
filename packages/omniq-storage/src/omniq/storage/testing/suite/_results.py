"""Result storage: put/get/delete, TTL, and wait woken by put."""

from __future__ import annotations

import time

import anyio
import pytest

from omniq.models import ErrorInfo, Payload, TaskResult, TaskStatus, new_id, now
from omniq.storage import Backend
from omniq.storage.testing.helpers import poll_until, rs


def result(**kw: object) -> TaskResult:
    kw.setdefault("task_id", new_id())
    kw.setdefault("status", TaskStatus.SUCCESS)
    return TaskResult(**kw)  # type: ignore[arg-type]


class TestResults:
    """Result storage: put/get/delete, TTL, and wait woken by put."""

    pytestmark = pytest.mark.anyio

    async def test_put_get_delete(self, store: Backend) -> None:
        r = rs(store)
        ok = result(payload=Payload("msgpack", b"\x01"), attempts=1, worker_id="w")
        bad = result(status=TaskStatus.ERROR, error=ErrorInfo(type="ValueError", message="boom"))
        await r.put([ok, bad])
        got = await r.get([ok.task_id, "nope", bad.task_id])
        assert got[0] == ok and got[1] is None and got[2] == bad
        replaced = result(task_id=ok.task_id, status=TaskStatus.ERROR)
        await r.put([replaced])
        assert await r.get_one(ok.task_id) == replaced
        assert await r.delete([ok.task_id, "nope"]) == 1
        assert await r.get_one(ok.task_id) is None

    async def test_results_expire_at_their_ttl(self, store: Backend) -> None:
        r = rs(store)
        short = result(expires_at=now() + 0.3)
        forever = result()
        later = result(expires_at=now() + 3600)
        await r.put([short, forever, later])
        assert await r.get_one(short.task_id) == short
        await poll_until(lambda: r.get_one(short.task_id), lambda x: x is None)
        assert await r.purge_expired() == 1
        assert await r.get_one(forever.task_id) == forever
        assert await r.get_one(later.task_id) == later
        assert await r.purge_expired() == 0

    async def test_purge_expired_finds_results_put_after_an_earlier_purge(
        self, store: Backend
    ) -> None:
        """Results put after a purge, expiring before everything that purge kept, are
        purged by the next one (stores that skip scans when nothing is due included)."""
        r = rs(store)
        await r.put([result(expires_at=now() + 3600)])
        assert await r.purge_expired() == 0
        soon = result(expires_at=now() + 0.2)
        await r.put([soon])
        await poll_until(lambda: r.get_one(soon.task_id), lambda x: x is None)
        assert await r.purge_expired() == 1
        assert await r.purge_expired() == 0

    async def test_wait_wakes_on_put(self, store: Backend) -> None:
        r = rs(store)
        res = result()
        waiting = anyio.Event()
        got: list[TaskResult | None] = []

        async def waiter() -> None:
            waiting.set()
            got.append(await r.wait(res.task_id, 30.0))

        start = time.monotonic()
        async with anyio.create_task_group() as tg:
            tg.start_soon(waiter)
            await waiting.wait()
            await r.put([res])
        assert got == [res]
        assert time.monotonic() - start < 2.0  # well before the 30 s timeout

    async def test_wait_returns_existing_and_times_out(self, store: Backend) -> None:
        r = rs(store)
        res = result()
        await r.put([res])
        assert await r.wait(res.task_id, 0.01) == res
        start = time.monotonic()
        assert await r.wait(new_id(), 0.1) is None
        assert time.monotonic() - start < 2.0
