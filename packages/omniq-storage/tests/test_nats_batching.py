"""NATS: what goes in one batch with a claim's or a completion's record writes.

A claim's lease timer and a completion's results are published in the same batch as
the record writes they cover, ahead of them on the connection. When the server refuses
one of them (here: a message-size limit set on its stream), the batch's record writes
are undone and the call raises, so no task is left leased without a lease timer, nor
finished without its result."""

from __future__ import annotations

import pytest

from omniq.models import Payload, StorageError, Task, TaskResult, TaskStatus, now
from omniq.storage import Completion
from omniq.storage._backends.nats._backend import NatsBackend
from omniq.storage._backends.nats._queue import NatsTaskQueue
from omniq.storage._backends.nats._stores import NatsResults

pytestmark = pytest.mark.anyio


@pytest.fixture
def backend(nats_backend: NatsBackend) -> NatsBackend:
    return nats_backend


def _task(**kw: object) -> Task:
    kw.setdefault("func", "tests:noop")
    return Task(**kw)  # type: ignore[arg-type]


def _stores(be: NatsBackend) -> tuple[NatsTaskQueue, NatsResults]:
    assert isinstance(be.tasks, NatsTaskQueue) and isinstance(be.results, NatsResults)
    return be.tasks, be.results


async def _max_msg_size(be: NatsBackend, stream: str, size: int) -> None:
    """Make ``stream`` refuse messages larger than ``size`` bytes (-1: no limit)."""
    info = await be.js.api(f"STREAM.INFO.{stream}")
    config = {**info["config"], "max_msg_size": size}
    await be.js.api(f"STREAM.UPDATE.{stream}", config)


async def test_a_refused_lease_timer_undoes_the_claim(backend: NatsBackend) -> None:
    q, _ = _stores(backend)
    t = _task()
    await q.enqueue([t])
    await _max_msg_size(backend, backend.work_stream, 16)  # below any lease timer
    with pytest.raises(StorageError):
        await q.claim(["default"], "w")
    got = await q.get_one(t.id)
    assert got is not None and got.status is TaskStatus.PENDING and got.attempt == 0
    await _max_msg_size(backend, backend.work_stream, -1)


async def test_a_refused_result_undoes_the_completion(backend: NatsBackend) -> None:
    q, r = _stores(backend)
    t = _task()
    await q.enqueue([t])
    [c] = await q.claim(["default"], "w")
    result = TaskResult(
        task_id=t.id,
        status=TaskStatus.SUCCESS,
        payload=Payload("msgpack", b"\x2a" * 64),
        attempts=1,
        finished_at=now(),
    )
    await _max_msg_size(backend, f"KV_{backend.results_bucket}", 16)
    with pytest.raises(StorageError):
        await q.finish([Completion(t.id, c.token)], [result], r, lease=30.0)
    got = await q.get_one(t.id)
    assert got is not None and got.status is TaskStatus.RUNNING
    assert await r.get_one(t.id) is None
    await _max_msg_size(backend, f"KV_{backend.results_bucket}", -1)
    report = await q.finish([Completion(t.id, c.token)], [result], r, lease=30.0)
    assert report.done == [t.id] and report.stale == []
    assert await r.get_one(t.id) == result


@pytest.mark.parametrize("replicas", [1, 3])
async def test_finish_renews_a_lease_near_its_end_and_fences_a_lost_one(
    backend: NatsBackend, replicas: int
) -> None:
    """The fence reads the records: a lease with under ``fence_margin`` left is renewed
    first (here a 10 ms lease, never reclaimed: no reaper runs), a lost one gets neither
    result nor completion. With replicas (as the backend sees its streams) every lease
    is renewed instead."""
    backend.replicas = replicas
    q, r = _stores(backend)
    near, lost = _task(), _task()
    await q.enqueue([near, lost])
    claimed = {c.task.id: c for c in await q.claim(["default"], "w", limit=2, lease=0.01)}
    await q.cancel([lost.id])

    def result(tid: str) -> TaskResult:
        return TaskResult(
            task_id=tid,
            status=TaskStatus.SUCCESS,
            payload=Payload("msgpack", b"\x2a"),
            attempts=1,
            finished_at=now(),
        )

    report = await q.finish(
        [Completion(t.id, claimed[t.id].token) for t in (near, lost)],
        [result(near.id), result(lost.id)],
        r,
        lease=30.0,
    )
    assert report.done == [near.id] and report.stale == [lost.id]
    assert await r.get_one(near.id) is not None and await r.get_one(lost.id) is None
    got = await q.get([near.id, lost.id])
    assert [t.status for t in got if t is not None] == [TaskStatus.SUCCESS, TaskStatus.CANCELLED]
