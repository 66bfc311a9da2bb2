"""NATS crash points: a client killed between a record write and the publish that
announces it (enqueue, retry, release, lease reclaim, claim, dependency release and
resolution) never strands the task; a fresh client running the usual sweep + claim
loop gets it within a deadline. The "kill" is the backend's test-only ``crash_hook``
raising at that point, after which the client's connection is closed unfinished."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import AsyncIterator

import pytest

from omniq.models import ClaimedTask, Task, TaskStatus
from omniq.storage import Completion, LeaseRef, RetryRequest, open_storage
from omniq.storage._backends.nats._backend import NatsBackend
from omniq.storage._backends.nats._queue import NatsTaskQueue

pytestmark = pytest.mark.anyio
NATS_URL = os.environ.get("OMNIQ_TEST_NATS_URL", "nats://127.0.0.1:4222")


class Killed(Exception):
    """Stands for the process dying at a crash point."""


@pytest.fixture
async def url() -> AsyncIterator[str]:
    u = f"{NATS_URL}?namespace=OQCRASH{uuid.uuid4().hex[:12].upper()}"
    yield u
    async with open_storage(u) as be:
        assert isinstance(be, NatsBackend)
        await be.drop()


def _task(**kw: object) -> Task:
    kw.setdefault("func", "tests:noop")
    return Task(**kw)  # type: ignore[arg-type]


def _queue(be: object) -> NatsTaskQueue:
    assert isinstance(be, NatsBackend) and isinstance(be.tasks, NatsTaskQueue)
    return be.tasks


def _doomed(be: object, point: str) -> NatsTaskQueue:
    """A client that dies at ``point``; its guards are due quickly so tests are fast."""
    q = _queue(be)
    q.guard_delay = q.blocked_recheck = 0.3

    def hook(at: str) -> None:
        if at == point:
            raise Killed(at)

    q.crash_hook = hook
    return q


async def _recovered(url: str, task_id: str, deadline: float = 15.0) -> ClaimedTask:
    """Run a fresh client's sweep + claim loop until it claims ``task_id``."""
    async with open_storage(url) as fresh:
        q = _queue(fresh)
        end = time.monotonic() + deadline
        while True:
            await q.reclaim_expired()
            for c in await q.claim(["default"], "fresh", limit=10):
                if c.task.id == task_id:
                    return c
                await q.complete([Completion(c.task.id, c.token)])
            assert time.monotonic() < end, f"{task_id} not claimable within {deadline}s"
            await q.wait_for_work(["default"], 0.1)


async def test_enqueue_killed_before_publish(url: str) -> None:
    t = _task()
    async with open_storage(url) as be:
        q = _doomed(be, "enqueue")
        with pytest.raises(Killed):
            await q.enqueue([t])
        got = await q.get_one(t.id)
        assert got is not None and got.status is TaskStatus.PENDING
        assert await q.claim(["default"], "w") == []  # no work message was published
    c = await _recovered(url, t.id)
    assert c.task.attempt == 1


async def test_keyed_enqueue_killed_before_publish(url: str) -> None:
    t = _task(key="k1")
    async with open_storage(url) as be:
        with pytest.raises(Killed):
            await _doomed(be, "enqueue").enqueue([t])
    await _recovered(url, t.id)


@pytest.mark.parametrize("op", ["retry", "release"])
async def test_retry_and_release_killed_before_publish(url: str, op: str) -> None:
    t = _task()
    async with open_storage(url) as be:
        q = _doomed(be, "back")
        await q.enqueue([t])
        [c] = await q.claim(["default"], "w", lease=1.0)
        with pytest.raises(Killed):
            if op == "retry":
                await q.retry([RetryRequest(t.id, c.token)])
            else:
                await q.release([LeaseRef(t.id, c.token)])
        got = await q.get_one(t.id)
        assert got is not None and got.status is TaskStatus.PENDING
    again = await _recovered(url, t.id)
    assert again.task.attempt == (2 if op == "retry" else 1)


async def test_requeue_killed_before_publish(url: str) -> None:
    """A dead letter requeued by a client that dies before announcing it: the guard
    timer published before the write re-announces it."""
    t = _task()
    async with open_storage(url) as be:
        q = _queue(be)  # default guard delay: the enqueue's own guard stays out of the way
        await q.enqueue([t])
        [c] = await q.claim(["default"], "w")
        await q.complete([Completion(t.id, c.token, TaskStatus.ERROR)])
        _doomed(be, "requeue")
        with pytest.raises(Killed):
            await q.requeue([t.id])
        got = await q.get_one(t.id)
        assert got is not None and got.status is TaskStatus.PENDING
    again = await _recovered(url, t.id, deadline=q.guard_delay * 10)
    assert again.task.attempt == 1


@pytest.mark.slow
async def test_reclaim_killed_before_publish(url: str) -> None:
    """The reaper dies after returning the expired lease's task to pending: its lease
    timer was not acked, so it is redelivered (ack wait) and re-announces the task."""
    t = _task()
    async with open_storage(url) as be:
        q = _queue(be)
        await q.enqueue([t])
        await q.claim(["default"], "w", lease=0.2)
    async with open_storage(url) as reaper:
        rq = _doomed(reaper, "reclaim")
        end = time.monotonic() + 10
        with pytest.raises(Killed):
            while time.monotonic() < end:
                await rq.reclaim_expired()
                await rq.wait_for_work(["default"], 0.05)
        got = await rq.get_one(t.id)
        assert got is not None and got.status is TaskStatus.PENDING
    await _recovered(url, t.id)


async def test_claim_killed_before_ack(url: str) -> None:
    t = _task()
    async with open_storage(url) as be:
        q = _doomed(be, "claim")
        await q.enqueue([t])
        with pytest.raises(Killed):
            await q.claim(["default"], "w", lease=0.5)
        got = await q.get_one(t.id)
        assert got is not None and got.status is TaskStatus.RUNNING
    again = await _recovered(url, t.id)
    assert again.task.attempt == 2


@pytest.mark.parametrize("point", ["dependency", "resolve"])
async def test_dependency_release_killed(url: str, point: str) -> None:
    """Killed after releasing the dependent (before its publish), or after completing
    the parent (before resolving its dependents): the dependent's guard recovers it."""
    parent = _task()
    child = _task(depends_on=(parent.id,))
    async with open_storage(url) as be:
        q = _doomed(be, point)
        await q.enqueue([parent, child])
        [c] = await q.claim(["default"], "w", limit=10)
        with pytest.raises(Killed):
            await q.complete([Completion(parent.id, c.token)])
    await _recovered(url, child.id)


async def test_dependency_enqueued_later_killed_before_adoption(url: str) -> None:
    """A dependent waiting for an id enqueued later is released even if the parent's
    enqueue died before adopting it (the dependent's guard re-checks the parent)."""
    parent = _task()
    child = _task(depends_on=(parent.id,))
    async with open_storage(url) as be:
        q = _doomed(be, "never")
        await q.enqueue([child])
        q.crash_hook = None
        from omniq.storage._backends.nats import _deps as _nats_deps

        async def no_adopt(*_: object) -> None:
            return None

        orig = _nats_deps.adopt_waiters
        _nats_deps.adopt_waiters = no_adopt  # type: ignore[assignment]
        try:
            await q.enqueue([parent])
        finally:
            _nats_deps.adopt_waiters = orig
        [c] = await q.claim(["default"], "w")
        assert c.task.id == parent.id
        await q.complete([Completion(parent.id, c.token)])
    await _recovered(url, child.id)
