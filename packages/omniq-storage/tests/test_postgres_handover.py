"""PostgreSQL handover: a single enqueue leases a task ready now straight to the worker
waiting idle on its queue (``idle_workers``), when nothing else of the queue is ready;
every other task is stored pending for a claim."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest

from omniq.models import ClaimedTask, Payload, Task, TaskStatus, now
from omniq.storage import LeaseRef
from omniq.storage._backends.postgres._backend import PostgresBackend
from omniq.storage._backends.postgres._tasks import HANDOVER
from omniq.storage.testing.helpers import poll_until

pytestmark = pytest.mark.anyio
BASE = "postgresql://postgres@127.0.0.1:5432/test"
Q = "handover"


@pytest.fixture
async def be() -> AsyncIterator[PostgresBackend]:
    name = f"omniq_pgho_{uuid.uuid4().hex[:10]}"
    backend = PostgresBackend(BASE, schema=name)
    await backend.connect()
    try:
        yield backend
        await backend.drop()
    finally:
        await backend.close()


def _task(**kw: Any) -> Task:
    return Task(func="m:f", queue=Q, **kw)


async def _registered(be: PostgresBackend, worker: str) -> None:
    query = "SELECT EXISTS (SELECT 1 FROM idle_workers WHERE worker_id = $1)"
    await poll_until(lambda: be.run(lambda c: c.fetchval(query, worker)), bool)


async def _offer(be: PostgresBackend, t: Task, worker: str = "w1") -> list[ClaimedTask]:
    """Enqueue ``t`` while ``worker`` waits for work with handovers; what its inbox got
    (empty when the task was stored pending instead: the wait then ends on the work
    NOTIFY of the enqueue)."""
    q = be.tasks
    assert q is not None
    got: list[ClaimedTask] = []
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:

            async def waiter() -> None:
                await q.wait_for_push([Q], 5.0, worker_id=worker, lease=30.0, inbox=got.extend)

            tg.start_soon(waiter)
            await _registered(be, worker)
            await q.enqueue([t])
    return got


async def test_a_task_ready_now_is_stored_leased_to_the_idle_worker(be: PostgresBackend) -> None:
    q = be.tasks
    assert q is not None
    t = _task()
    before = now()
    [c] = await _offer(be, t)
    assert c.task.id == t.id and c.worker_id == "w1" and c.task.attempt == 1
    assert before < c.lease_expires_at <= now() + HANDOVER
    row = await be.run(
        lambda conn: conn.fetchrow(
            "SELECT status, token, pushed, worker_id FROM tasks WHERE id = $1", t.id
        )
    )
    assert (row["status"], row["worker_id"]) == ("running", "w1")
    assert row["token"] == row["pushed"] == c.token
    # the registration was used up: the next task is not sent to the same wait again
    assert not await be.run(lambda conn: conn.fetchval("SELECT count(*) FROM idle_workers"))
    assert await q.claim([Q], "other") == []
    assert await q.renew([LeaseRef.of(c)], 30.0) == []
    assert (
        await be.run(lambda conn: conn.fetchval("SELECT pushed FROM tasks WHERE id = $1", t.id))
        is None
    )
    assert await q.close_inbox("w1") == []  # renewed: the worker's own now


async def test_tasks_that_must_wait_their_turn_are_not_handed_over(be: PostgresBackend) -> None:
    """A queue with a ready task keeps its order (the newcomer is stored pending); a
    delayed task, a task of a paused queue and a task too large for a NOTIFY payload
    are stored pending too, and each can then be claimed."""
    q = be.tasks
    assert q is not None
    first = _task()
    await q.enqueue([first])
    behind = _task()
    assert await _offer(be, behind) == []
    claimed = await q.claim([Q], "w1", limit=10)
    assert [c.task.id for c in claimed] == [first.id, behind.id]

    later = _task(eta=now() + 3600)
    assert await _offer(be, later) == []

    big = _task(payload=Payload("msgpack", b"x" * 6000))
    assert await _offer(be, big) == []
    [c] = await q.claim([Q], "w1")
    assert c.task.id == big.id

    await q.pause_queue(Q)
    held = _task()
    assert await _offer(be, held) == []
    await q.resume_queue(Q)
    [c] = await q.claim([Q], "w1")
    assert c.task.id == held.id
    await q.close_inbox("w1")


async def test_a_lapsed_registration_gets_nothing(be: PostgresBackend) -> None:
    q = be.tasks
    assert q is not None
    await be.run(
        lambda c: c.execute(
            "INSERT INTO idle_workers VALUES ($1, 'gone', $2, 30.0, $3)",
            Q,
            be.push_channel,
            now() - 1.0,
        )
    )
    t = _task()
    await q.enqueue([t])
    stored = await q.get_one(t.id)
    assert stored is not None and stored.status is TaskStatus.PENDING


async def test_registrations_are_unlogged(be: PostgresBackend) -> None:
    """Registering an idle worker writes no WAL (and so waits for no flush)."""
    kind = await be.run(
        lambda c: c.fetchval(
            "SELECT relpersistence::text FROM pg_class WHERE oid = 'idle_workers'::regclass"
        )
    )
    assert kind == "u"


async def test_a_waiting_worker_deletes_registrations_lapsed_long_ago(
    be: PostgresBackend,
) -> None:
    """A worker that died without close_inbox leaves its rows; the next registration on
    the same queue deletes those that lapsed over a minute ago, so the table stays small."""
    t = now()
    for worker, until in (("dead", t - 120.0), ("recent", t - 1.0)):
        await be.run(
            lambda c, w=worker, u=until: c.execute(
                "INSERT INTO idle_workers VALUES ($1, $2, $3, 30.0, $4)", Q, w, be.push_channel, u
            )
        )
    got = await _offer(be, _task(), worker="alive")
    assert [c.task.queue for c in got] == [Q]
    rows = await be.run(lambda c: c.fetch("SELECT worker_id FROM idle_workers ORDER BY 1"))
    assert [r[0] for r in rows] == ["recent"]


async def test_single_enqueues_find_a_worker_that_starts_waiting(be: PostgresBackend) -> None:
    """A lone enqueue into a queue nobody waits on stores its task pending without the
    handover's probe; once a worker waits, the next one is handed over, and after the
    registration is used up the next is stored pending again, on one store."""
    q = be.tasks
    assert q is not None
    first = _task()
    [stored] = await q.enqueue([first])
    assert stored.status is TaskStatus.PENDING
    [again] = await q.enqueue([first])  # the same id: the stored task comes back
    assert again.id == first.id and again.status is TaskStatus.PENDING
    [c] = await q.claim([Q], "w0")
    assert c.task.id == first.id
    for worker in ("w1", "w2"):
        handed = _task()
        [h] = await _offer(be, handed, worker=worker)
        assert (h.task.id, h.worker_id) == (handed.id, worker)
        assert await q.renew([LeaseRef.of(h)], 30.0) == []  # the worker confirms it
        alone = _task()  # the registration was used up: nobody waits now
        await q.enqueue([alone])
        got = await q.get_one(alone.id)
        assert got is not None and got.status is TaskStatus.PENDING
        [c] = await q.claim([Q], "w0")
        assert c.task.id == alone.id
        assert await q.close_inbox(worker) == []
