"""Handover: a store may lease a task to a worker waiting idle (``wait_for_push``) as the
task is enqueued. Whatever the backend does, the task runs exactly through one path
(handed over, or claimable) and ``close_inbox`` gives back what was never run."""

from __future__ import annotations

import anyio
import pytest

from omniq.models import ClaimedTask, TaskStatus
from omniq.storage import Backend, Completion, LeaseRef

from .helpers import task, tq


async def _registered(store: Backend, worker: str) -> None:
    """Until the waiter's idle registration is stored (Redis keeps it in ``iw:<queue>``,
    as a member starting with the worker id), so the enqueue that follows is the one that
    finds it. Other backends register nothing: their waiter just waits for work, and the
    test takes the claim path."""
    from omniq.storage._backends.redis._backend import RedisBackend

    if not isinstance(store, RedisBackend):
        return
    key = f"{store.prefix}iw:default"
    deadline = anyio.current_time() + 5.0
    while worker.encode() not in [
        m.split(b"\x1f", 1)[0] for m in await store.redis.zrange(key, 0, -1)
    ]:
        assert anyio.current_time() < deadline, "the waiter never registered"
        await anyio.sleep(0.01)


pytestmark = pytest.mark.anyio


async def _wait_and_enqueue(store: Backend, worker: str) -> tuple[list[ClaimedTask], str]:
    q = tq(store)
    got: list[ClaimedTask] = []
    landed = anyio.Event()

    def inbox(claims: list[ClaimedTask]) -> None:
        got.extend(claims)
        landed.set()

    t = task()
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:

            async def waiter() -> None:
                await q.wait_for_push(["default"], 5.0, worker_id=worker, lease=30.0, inbox=inbox)

            tg.start_soon(waiter)
            await _registered(store, worker)
            await q.enqueue([t])
    # A handover travels through the backend's listener: allow it a moment to land.
    with anyio.move_on_after(1.0):
        await landed.wait()
    return got, t.id


async def test_a_task_enqueued_for_a_waiting_worker_runs_once(store: Backend) -> None:
    q = tq(store)
    got, tid = await _wait_and_enqueue(store, "w-handover")
    if store.url.startswith("redis"):
        assert got, "Redis hands a task over to a worker waiting on an empty queue"
    if got:
        [c] = got
        assert c.task.id == tid and c.worker_id == "w-handover" and c.task.attempt == 1
        stored = await q.get_one(tid)
        assert stored is not None and stored.status is TaskStatus.RUNNING
        assert await q.claim(["default"], "other") == []  # leased: nobody else gets it
        assert await q.renew([LeaseRef.of(c)], 30.0) == []  # the worker confirms it
        report = await q.complete([Completion(tid, c.token)])
        assert report.done == [tid]
    else:
        [c] = await q.claim(["default"], "w-handover")
        assert c.task.id == tid
    assert await q.close_inbox("w-handover") == []


async def test_close_inbox_gives_back_tasks_never_run(store: Backend) -> None:
    q = tq(store)
    got, tid = await _wait_and_enqueue(store, "w-gone")
    back = await q.close_inbox("w-gone")
    if got:
        assert back == [tid]
    else:
        assert back == []
    stored = await q.get_one(tid)
    assert stored is not None and stored.status is TaskStatus.PENDING and stored.attempt == 0
    [c] = await q.claim(["default"], "w-next")
    assert c.task.id == tid and c.task.attempt == 1
    # After close, no more handovers: a new task is simply claimable.
    t2 = task()
    await q.enqueue([t2])
    [c2] = await q.claim(["default"], "w-next")
    assert c2.task.id == t2.id
