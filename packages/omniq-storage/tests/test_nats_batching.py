"""NATS: what goes in one batch with a claim's or a completion's record writes.

A claim's lease timer and a completion's results are published in the same batch as
the record writes they cover, ahead of them on the connection. When the server refuses
one of them (here: a message-size limit set on its stream), the batch's record writes
are undone and the call raises, so no task is left leased without a lease timer, nor
finished without its result."""

from __future__ import annotations

import msgspec
import pytest

from omniq.models import ClaimedTask, Payload, StorageError, Task, TaskResult, TaskStatus, now
from omniq.storage import Completion, ResultRecord
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
    """Count the round trips ``be`` makes from now on: a batch of requests (``JS.many``)
    sent while none is in flight starts one (appended: its number of requests); one
    sent alongside joins it."""
    js = be.js
    waves: list[int] = []
    inflight = 0
    many = js.many

    async def counted(reqs):  # type: ignore[no-untyped-def]
        nonlocal inflight
        if inflight:
            waves[-1] += len(reqs)
        else:
            waves.append(len(reqs))
        inflight += 1
        try:
            return await many(reqs)
        finally:
            inflight -= 1

    js.many = counted  # type: ignore[method-assign]
    return waves


async def _raw_result(be: NatsBackend, task_id: str) -> TaskResult | None:
    """The result the task record holds for the result store."""
    from omniq.storage._backends.nats._conn import token
    from omniq.storage._backends.nats._records import decode_rec

    raw, rev = await be.js.kv_get(be.tasks_bucket, token(task_id))
    assert raw is not None
    return decode_rec(task_id, raw, rev).stored_result()


async def _hand_off(
    be: NatsBackend, size: int
) -> tuple[list[int], Task, TaskResult, list[ClaimedTask]]:
    """Three tasks capped at one running: the first claimed (the others held back by
    the cap), then finished with a result of ``size`` payload bytes by
    ``finish_and_claim``, which hands its slot on. Returns the request batches the
    hand-off sent, the finished task, its result and the claims it made."""
    q, r = _stores(be)
    capped = [_task(max_concurrency=1) for _ in range(3)]
    await q.enqueue(capped)
    [c] = await q.claim(["default"], "w", limit=5)
    result = _result(c.task.id, size)
    sent = _counting(be)
    done = await q.finish_and_claim(
        [Completion(c.task.id, c.token)],
        [result],
        r,
        lease=30.0,
        queues=["default"],
        worker_id="w",
        limit=1,
    )
    assert done is not None
    report, claims = done
    assert report.done == [c.task.id]
    assert [x.task.id for x in claims] == [capped[1].id]
    return sent, c.task, result, claims


async def test_a_hand_off_writes_a_small_result_inside_its_completion_record(
    backend: NatsBackend,
) -> None:
    """A capped task's hand-off is four round trips (the fence and the freed-slot
    reads; the results, completions and the key's transfer; the leases; the paused
    queues) and the ended record holds its result: a server that stops mid-batch and
    keeps the record but not the result entry still has the result to give."""
    q, r = _stores(backend)
    sent, ended, result, claims = await _hand_off(backend, 64)
    assert len(sent) == 4, sent
    assert await _raw_result(backend, ended.id) == result
    assert await r.get_one(ended.id) == result

    # The batch as a stopping server may keep it: the record, not the result entry.
    nxt = claims[0]
    dropped = _result(nxt.task.id)
    done = await q._complete(
        [Completion(nxt.task.id, nxt.token)], "cancel", (), inline={nxt.task.id: dropped}
    )
    assert done.done == [nxt.task.id]
    assert await r.get_one(nxt.task.id) == dropped


async def test_a_large_result_and_a_plain_finish_store_the_result_first(
    backend: NatsBackend,
) -> None:
    """A result over ``inline_max`` bytes stays out of the record, acknowledged before
    the records are sent (one round trip more); so does every result of a ``finish``
    that hands no slot on: finished records stay small for the scans that read them."""
    q, r = _stores(backend)
    sent, ended, result, claims = await _hand_off(backend, q.inline_max + 1)
    assert len(sent) == 5, sent
    assert await _raw_result(backend, ended.id) is None
    assert await r.get_one(ended.id) == result

    nxt = claims[0]
    sent.clear()
    plain = _result(nxt.task.id)
    report = await q.finish([Completion(nxt.task.id, nxt.token)], [plain], r, lease=30.0)
    assert report.done == [nxt.task.id]
    assert len(sent) == 3, sent
    assert await _raw_result(backend, nxt.task.id) is None
    assert await r.get_one(nxt.task.id) == plain


async def test_a_failure_record_holds_the_workers_result_beside_its_cascade_seed(
    backend: NatsBackend,
) -> None:
    """A failure whose dependents a record cancels holds the seed of their results
    (``Rec.result``) and, beside it, the worker's own result: the one the result store
    gives from the record."""
    q, r = _stores(backend)
    root = _task()
    child = _task(depends_on=(root.id,))
    await q.enqueue([root, child])
    [c] = await q.claim(["default"], "w")
    mine = TaskResult(task_id=root.id, status=TaskStatus.ERROR, attempts=1, finished_at=now())
    report = await q._complete(
        [Completion(root.id, c.token, TaskStatus.ERROR)],
        "cancel",
        (),
        ResultRecord(r, retention=3600.0),
        inline={root.id: mine},
    )
    assert report.done == [root.id] and [t.id for t in report.cancelled] == [child.id]
    assert await _raw_result(backend, root.id) == mine
    got = await r.get_one(child.id)
    assert got is not None and got.status is TaskStatus.CANCELLED
    assert got.finished_at is not None
    assert got.expires_at == pytest.approx(got.finished_at + 3600.0)  # the seed's retention


def test_a_kept_result_round_trips_through_the_record_and_a_bad_one_is_none() -> None:
    """``Rec.kept`` gives back the very result it was made from (a failure's error
    included), only once the record is terminal, and a kept array that does not
    convert counts as no result, leaving the one ``cancel`` wrote."""
    from omniq.models import ErrorInfo
    from omniq.storage._backends.nats._records import Rec, enc, finished, kept_of, rec_dec

    t = _task()
    res = TaskResult(
        task_id=t.id,
        status=TaskStatus.ERROR,
        error=ErrorInfo.from_exception(ValueError("boom")),
        attempts=2,
        started_at=1.0,
        finished_at=2.0,
        worker_id="w",
        expires_at=3.0,
        queue="default",
    )
    ended = msgspec.structs.replace(finished(Rec(t), TaskStatus.ERROR, 2.0), kept=kept_of(res))
    assert rec_dec.decode(enc.encode(ended)).stored_result() == res
    assert msgspec.structs.replace(ended, task=t).stored_result() is None  # not ended
    other = _result(t.id)
    bad = msgspec.structs.replace(ended, kept=["no such status"], result=other)
    assert bad.stored_result() == other
