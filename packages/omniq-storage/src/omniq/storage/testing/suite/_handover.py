"""Handover: a store may lease a task to a worker waiting idle (``wait_for_push``) as the
task is enqueued. Whatever the backend does, the task runs exactly through one path
(handed over, or claimable) and ``close_inbox`` gives back what was never run."""

from __future__ import annotations

import anyio
import pytest

from omniq.models import ClaimedTask, TaskStatus
from omniq.storage import Backend, Completion, LeaseRef
from omniq.storage.testing._specs import BackendSpec
from omniq.storage.testing.helpers import task, tq


async def _wait_and_enqueue(
    store: Backend, worker: str, spec: BackendSpec
) -> tuple[list[ClaimedTask], str]:
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
            if spec.waiter_registered is not None:
                # the enqueue that follows must be the one that finds the registration
                await spec.waiter_registered(store, worker)
            await q.enqueue([t])
    # A handover travels through the backend's listener: allow it a moment to land.
    with anyio.move_on_after(1.0):
        await landed.wait()
    return got, t.id


class TestHandover:
    """A task enqueued for a worker waiting idle runs once, handed over or claimed."""

    pytestmark = pytest.mark.anyio

    async def test_a_task_enqueued_for_a_waiting_worker_runs_once(
        self, store: Backend, backend_spec: BackendSpec
    ) -> None:
        q = tq(store)
        got, tid = await _wait_and_enqueue(store, "w-handover", backend_spec)
        if backend_spec.hands_over:
            assert got, f"{backend_spec.id} hands a task over to a worker waiting on an empty queue"
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

    async def test_close_inbox_gives_back_tasks_never_run(
        self, store: Backend, backend_spec: BackendSpec
    ) -> None:
        q = tq(store)
        got, tid = await _wait_and_enqueue(store, "w-gone", backend_spec)
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
