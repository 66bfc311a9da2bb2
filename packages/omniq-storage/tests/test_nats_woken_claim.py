"""NATS: a claim after a wait leases the tasks whose work messages woke it straight
from those messages (``_backends/nats/_direct``): exactly once across workers, the
stale message dropped, paused queues fenced, anything else left to the usual claim."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest

from omniq.models import ClaimedTask, Task, TaskStatus
from omniq.storage import Completion, LeaseRef, open_storage
from omniq.storage._backends.nats._backend import NatsBackend

pytestmark = pytest.mark.anyio
NATS_URL = os.environ.get("OMNIQ_TEST_NATS_URL", "nats://127.0.0.1:4222")


@pytest.fixture
async def url() -> AsyncIterator[str]:
    u = f"{NATS_URL}?namespace=OQWOKEN{uuid.uuid4().hex[:12].upper()}"
    yield u
    async with open_storage(u) as be:
        assert isinstance(be, NatsBackend)
        await be.drop()


def _task(**kw: object) -> Task:
    kw.setdefault("func", "tests:noop")
    return Task(**kw)  # type: ignore[arg-type]


def _checked(be: NatsBackend) -> anyio.Event:
    """Set once a wait of ``be`` has read the stream (its subscriptions exist by then)."""
    q = be.tasks
    real = q._probe  # type: ignore[attr-defined]
    done = anyio.Event()

    async def probe(*a: Any) -> Any:
        got = await real(*a)
        done.set()
        return got

    q._probe = probe  # type: ignore[attr-defined]
    return done


async def _wait_then(be: NatsBackend, queues: list[str], enqueue: object) -> bool:
    """Run ``be``'s wait; once it waits, await ``enqueue()``; the wait's answer."""
    woke = False

    async def waiter() -> None:
        nonlocal woke
        woke = await be.tasks.wait_for_work(queues, 5.0)

    checked = _checked(be)
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(waiter)
            await checked.wait()
            await enqueue()  # type: ignore[operator]
    return woke


async def _work_left(be: NatsBackend) -> int:
    info = await be.js.api(f"STREAM.INFO.{be.work_stream}", {"subjects_filter": f"{be.ns}.work.>"})
    return sum((info["state"].get("subjects") or {}).values())


async def test_two_waiting_workers_lease_a_woken_task_once(url: str) -> None:
    t = _task()
    async with open_storage(url) as a, open_storage(url) as b, open_storage(url) as c:
        assert isinstance(a, NatsBackend) and isinstance(b, NatsBackend)
        await a.tasks.claim(["default"], "wa")  # creates the stream before the waits

        async def enqueue() -> None:
            await c.tasks.enqueue([t])

        checked_b = _checked(b)
        async with anyio.create_task_group() as tg:
            woke_b = []

            async def wait_b() -> None:
                woke_b.append(await b.tasks.wait_for_work(["default"], 5.0))

            tg.start_soon(wait_b)
            await checked_b.wait()
            assert await _wait_then(a, ["default"], enqueue)
        assert woke_b == [True]
        assert a.tasks._woken and b.tasks._woken  # type: ignore[attr-defined]
        got_a = await a.tasks.claim(["default"], "wa", limit=10)
        got_b = await b.tasks.claim(["default"], "wb", limit=10)
        claims = got_a + got_b
        assert [x.task.id for x in claims] == [t.id]
        [won] = claims
        assert won.task.attempt == 1
        assert await a.tasks.claim(["default"], "wa", limit=10) == []
        assert await b.tasks.claim(["default"], "wb", limit=10) == []
        assert await _work_left(a) == 0  # the message was pulled and dropped
        winner = a if got_a else b
        await winner.tasks.complete([Completion(t.id, won.token, TaskStatus.SUCCESS)])
        stored = await c.tasks.get_one(t.id)
        assert stored is not None and stored.status is TaskStatus.SUCCESS


async def test_the_woken_claim_drops_its_own_message_unread(url: str) -> None:
    async with open_storage(url) as be:
        assert isinstance(be, NatsBackend)
        q = be.tasks
        await q.claim(["default"], "w")
        tasks = [_task(priority=0), _task(priority=5)]

        async def enqueue() -> None:
            await q.enqueue(tasks)

        assert await _wait_then(be, ["default"], enqueue)
        held = q._woken[("default",)]  # type: ignore[attr-defined]
        top = max(held, key=lambda wr: wr[1].task.priority)[0].id  # both, unless one was late
        first = await q.claim(["default"], "w", limit=1)
        assert [c.task.id for c in first] == [top]
        second = await q.claim(["default"], "w", limit=10)
        assert {c.task.id for c in first + second} == {t.id for t in tasks}
        assert await q.claim(["default"], "w", limit=10) == []
        assert await _work_left(be) == 0
        assert not q._taken  # type: ignore[attr-defined]


async def test_a_queue_paused_during_the_wait_is_fenced(url: str) -> None:
    t = _task(queue="pz")
    async with open_storage(url) as be, open_storage(url) as other:
        assert isinstance(be, NatsBackend)
        q = be.tasks
        await q.claim(["pz"], "w")

        async def pause_then_enqueue() -> None:
            assert await other.tasks.pause_queue("pz")
            await other.tasks.enqueue([t])

        assert await _wait_then(be, ["pz"], pause_then_enqueue)
        assert q._woken  # type: ignore[attr-defined]
        assert await q.claim(["pz"], "w") == []
        stored = await q.get_one(t.id)
        assert stored is not None and stored.status is TaskStatus.PENDING
        assert stored.attempt == 0
        assert await other.tasks.resume_queue("pz")
        [c] = await q.claim(["pz"], "w")
        assert c.task.id == t.id and c.task.attempt == 1


async def test_flow_limited_work_goes_through_the_usual_claim(url: str) -> None:
    tasks = [_task(max_concurrency=1, limit_key="one") for _ in range(2)]
    async with open_storage(url) as be:
        assert isinstance(be, NatsBackend)
        q = be.tasks
        await q.claim(["default"], "w")

        async def enqueue() -> None:
            await q.enqueue(tasks)

        assert await _wait_then(be, ["default"], enqueue)
        assert not q._woken  # type: ignore[attr-defined]
        got = await q.claim(["default"], "w", limit=10)
        assert len(got) == 1


async def test_wait_for_push_hands_the_woken_task_over(url: str) -> None:
    async with open_storage(url) as be:
        assert isinstance(be, NatsBackend)
        q = be.tasks
        await q.claim(["default"], "w")
        got: list[ClaimedTask] = []
        t1, t2 = _task(), _task()
        for t in (t1, t2):
            got.clear()
            checked = _checked(be)
            with anyio.fail_after(10):
                async with anyio.create_task_group() as tg:

                    async def waiter() -> None:
                        assert await q.wait_for_push(
                            ["default"], 5.0, worker_id="wp", lease=30.0, inbox=got.extend
                        )

                    tg.start_soon(waiter)
                    await checked.wait()
                    await q.enqueue([t])
            [c] = got
            assert c.task.id == t.id and c.worker_id == "wp" and c.task.attempt == 1
            assert await q.claim(["default"], "other", limit=10) == []
            if t is t2:  # the worker confirms it: no longer given back on close
                assert await q.renew([LeaseRef.of(c)], 30.0) == []
            with anyio.fail_after(5):  # the stale message's ack is not awaited
                while await _work_left(be):  # noqa: ASYNC110
                    await anyio.sleep(0.01)
        assert await q.close_inbox("wp") == [t1.id]
        s1, s2 = await q.get([t1.id, t2.id])
        assert s1 is not None and s1.status is TaskStatus.PENDING and s1.attempt == 0
        assert s2 is not None and s2.status is TaskStatus.RUNNING
        [again] = await q.claim(["default"], "w", limit=10)
        assert again.task.id == t1.id and again.task.attempt == 1
        assert await _work_left(be) == 0


async def test_a_released_dependent_is_not_handed_over(url: str) -> None:
    parent = _task()
    child = _task(depends_on=[parent.id])
    async with open_storage(url) as be:
        assert isinstance(be, NatsBackend)
        q = be.tasks
        await q.enqueue([parent, child])
        [c] = await q.claim(["default"], "w")
        assert c.task.id == parent.id
        got: list[ClaimedTask] = []

        async def waiter() -> None:
            assert await q.wait_for_push(
                ["default"], 5.0, worker_id="wp", lease=30.0, inbox=got.extend
            )

        checked = _checked(be)
        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                tg.start_soon(waiter)
                await checked.wait()
                report = await q.complete([Completion(parent.id, c.token, TaskStatus.SUCCESS)])
                assert report.released == [child.id]
        assert got == []  # the worker's claim checks a dependent before it runs
        assert q._woken  # type: ignore[attr-defined]
        [cc] = await q.claim(["default"], "w")
        assert cc.task.id == child.id
        assert await q.close_inbox("wp") == []
