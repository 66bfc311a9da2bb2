"""NATS: a finish whose task record write was stored but whose result was not (a
server stopping while the batch was in flight: the record and result streams store
independently, so the result can be the one dropped), retried by the worker, stores
the result and reports the task done; a retry with a lease that another run's finish
ended stays stale and stores nothing. The first try's state is made on the real server
by ``complete``: the same record write as ``finish``'s, with no result sent (the
results stream denies deleting the one sent)."""

from __future__ import annotations

import pytest

from omniq.models import Task, TaskResult, TaskStatus, now
from omniq.storage import Completion, LeaseRef
from omniq.storage._backends.nats._backend import NatsBackend

pytestmark = pytest.mark.anyio


@pytest.fixture
def backend(nats_backend: NatsBackend) -> NatsBackend:
    return nats_backend


def _task() -> Task:
    return Task(func="tests:noop")


def _result(task_id: str, value: str) -> TaskResult:
    return TaskResult(
        task_id=task_id, status=TaskStatus.SUCCESS, value=value, attempts=1, finished_at=now()
    )


async def test_retried_finish_stores_the_result_its_first_try_lost(backend: NatsBackend) -> None:
    q, r = backend.tasks, backend.results
    assert q is not None and r is not None
    a, b = _task(), _task()
    await q.enqueue([a, b])
    claimed = {c.task.id: c for c in await q.claim(["default"], "w", limit=10)}
    completions = [Completion(t.id, claimed[t.id].token) for t in (a, b)]
    results = [_result(a.id, "a"), _result(b.id, "b")]
    # The first try: both record writes stored, only b's result.
    assert (await q.complete(completions[:1])).done == [a.id]
    assert (await q.finish(completions[1:], results[1:], r, lease=30.0)).done == [b.id]
    got = await q.get_one(a.id)
    assert got is not None and got.status is TaskStatus.SUCCESS
    assert await r.get_one(a.id) is None  # `success` without its result: the flake's state

    again = await q.finish(completions, results, r, lease=30.0)  # the worker's retry

    assert sorted(again.done) == sorted([a.id, b.id]) and again.stale == []
    assert await r.get([a.id, b.id]) == results
    got = await q.get_one(a.id)
    assert got is not None and got.status is TaskStatus.SUCCESS


async def test_retried_finish_of_a_lease_another_run_ended_stays_stale(
    backend: NatsBackend,
) -> None:
    q, r = backend.tasks, backend.results
    assert q is not None and r is not None
    a = _task()
    await q.enqueue([a])
    [old] = await q.claim(["default"], "w1")
    assert await q.release([LeaseRef(a.id, old.token)]) == []
    [new] = await q.claim(["default"], "w2")
    assert new.token != old.token
    assert (await q.complete([Completion(a.id, new.token)])).done == [a.id]  # result lost

    late = await q.finish([Completion(a.id, old.token)], [_result(a.id, "old")], r, lease=30.0)

    assert late.stale == [a.id] and late.done == []
    assert await r.get_one(a.id) is None
