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


def _result(task_id: str, size: int = 64) -> TaskResult:
    """A success result whose payload is ``size`` bytes."""
    return TaskResult(
        task_id=task_id,
        status=TaskStatus.SUCCESS,
        payload=Payload("msgpack", b"\x2a" * size),
        attempts=1,
        finished_at=now(),
    )


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
    result = _result(t.id)
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


def _counting(be: NatsBackend) -> list[int]:
    """Count the request batches (round trips) ``be`` sends from now on: each call of
    ``JS.many`` appends its number of requests."""
    js = be.js
    sent: list[int] = []
    many = js.many

    async def counted(reqs):  # type: ignore[no-untyped-def]
        sent.append(len(reqs))
        return await many(reqs)

    js.many = counted  # type: ignore[method-assign]
    return sent


async def _raw_result(be: NatsBackend, task_id: str) -> TaskResult | None:
    """The result the task record holds (``Rec.result``)."""
    from omniq.storage._backends.nats._conn import token
    from omniq.storage._backends.nats._records import decode_rec

    raw, rev = await be.js.kv_get(be.tasks_bucket, token(task_id))
    assert raw is not None
    return decode_rec(task_id, raw, rev).result


async def test_a_small_result_rides_in_its_completion_record(backend: NatsBackend) -> None:
    """A finish is two round trips (the fence read, then the results and the records in
    one batch) and each ended record holds its result: a server that stops mid-batch
    and keeps the record but not the result entry still has the result to give."""
    q, r = _stores(backend)
    t, lost = _task(), _task()
    await q.enqueue([t, lost])
    claimed = {c.task.id: c for c in await q.claim(["default"], "w", limit=2)}
    result = _result(t.id)
    sent = _counting(backend)
    report = await q.finish([Completion(t.id, claimed[t.id].token)], [result], r, lease=30.0)
    assert report.done == [t.id]
    assert len(sent) == 2, sent
    assert await _raw_result(backend, t.id) == result
    assert await r.get_one(t.id) == result

    # The batch as a stopping server may keep it: the record, not the result entry.
    dropped = TaskResult(
        task_id=lost.id, status=TaskStatus.SUCCESS, value="kept", attempts=1, finished_at=now()
    )
    done = await q._complete(
        [Completion(lost.id, claimed[lost.id].token)], "cancel", (), inline={lost.id: dropped}
    )
    assert done.done == [lost.id]
    assert await r.get_one(lost.id) == dropped


async def test_a_large_result_is_stored_before_its_completion_record(
    backend: NatsBackend,
) -> None:
    """A result over ``inline_max`` bytes stays out of the record: it is acknowledged
    before the records are sent (three round trips)."""
    q, r = _stores(backend)
    t = _task()
    await q.enqueue([t])
    [c] = await q.claim(["default"], "w")
    result = _result(t.id, q.inline_max + 1)
    sent = _counting(backend)
    report = await q.finish([Completion(t.id, c.token)], [result], r, lease=30.0)
    assert report.done == [t.id]
    assert len(sent) == 3, sent
    assert await _raw_result(backend, t.id) is None
    assert await r.get_one(t.id) == result
