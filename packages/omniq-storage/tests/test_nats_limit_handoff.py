"""NATS hands freed concurrency slots on: a claim for freed slots leases the work an
earlier claim held back by its cap (its messages are out for redelivery), never ahead of
ready work of a higher priority, and never past the cap; a wait for freed slots wakes
for its own queues only (``test_limit_wakes`` covers the wakes across clients)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from omniq.models import Payload, TaskResult, TaskStatus, now
from omniq.storage import Completion, open_storage
from omniq.storage._backends.nats import _flow
from omniq.storage.testing.helpers import task
from omniq.storage.testing.servers import unique_url

pytestmark = pytest.mark.anyio


@pytest.fixture
async def url() -> AsyncIterator[str]:
    u = unique_url("nats")
    yield u
    async with open_storage(u) as be:
        await be.drop()  # type: ignore[attr-defined]


def _result(task_id: str) -> TaskResult:
    return TaskResult(
        task_id=task_id,
        status=TaskStatus.SUCCESS,
        payload=Payload("msgpack", b"\x2a"),
        attempts=1,
        finished_at=now(),
    )


async def _finish_and_claim(be: Any, claimed: Any, result: TaskResult, limit: int) -> Any:
    """``finish_and_claim`` of one claim of queue ``default`` by worker ``w``."""
    return await be.tasks.finish_and_claim(
        [Completion(claimed.task.id, claimed.token)],
        [result],
        be.results,
        lease=30.0,
        queues=["default"],
        worker_id="w",
        limit=limit,
    )


async def test_the_claim_for_a_freed_slot_leases_the_held_task_at_once(url: str) -> None:
    async with open_storage(url) as be:
        q: Any = be.tasks
        capped = [task(max_concurrency=1) for _ in range(3)]
        await q.enqueue(capped)
        [c] = await q.claim(["default"], "w", limit=10)
        assert c.task.id == capped[0].id and q.limited
        # The held messages are out for redelivery: a plain claim finds nothing to pull.
        assert await q.claim(["default"], "w", limit=10) == []
        await q.complete([Completion(c.task.id, c.token)])
        got = await q.claim_limited(["default"], "w", limit=10)
        assert [x.task.id for x in got] == [capped[1].id]
        assert got[0].task.status is TaskStatus.RUNNING and got[0].task.attempt == 1
        assert await q.claim_limited(["default"], "w", limit=10) == []  # the cap holds


async def test_finish_and_claim_hands_on_only_the_slots_it_freed(url: str) -> None:
    async with open_storage(url) as be:
        q: Any = be.tasks
        capped = [task(max_concurrency=2) for _ in range(5)]
        await q.enqueue(capped)
        first = await q.claim(["default"], "w", limit=10)
        assert [x.task.id for x in first] == [t.id for t in capped[:2]]
        c = first[0]
        result = _result(c.task.id)
        done = await _finish_and_claim(be, c, result, 5)
        assert done is not None
        report, claims = done
        assert report.done == [c.task.id]
        assert [x.task.id for x in claims] == [capped[2].id]
        assert await be.results.get_one(c.task.id) == result
        assert await q.claim_limited(["default"], "w", limit=10) == []
        assert await q.count(status=TaskStatus.RUNNING) == 2


async def test_held_work_never_jumps_ahead_of_a_higher_priority(url: str) -> None:
    async with open_storage(url) as be:
        q: Any = be.tasks
        low = [task(max_concurrency=1, limit_key="k") for _ in range(2)]
        await q.enqueue(low)
        [c] = await q.claim(["default"], "w", limit=10)
        assert c.task.id == low[0].id
        high = task(max_concurrency=1, limit_key="k", priority=5)
        await q.enqueue([high])
        await q.complete([Completion(c.task.id, c.token)])
        got = await q.claim_limited(["default"], "w", limit=10)
        assert [x.task.id for x in got] == [high.id]


async def test_news_of_another_queue_does_not_end_the_wait(url: str) -> None:
    async with open_storage(url) as be:
        q: Any = be.tasks
        await q.limits_freed(["other"])
        assert await q.wait_for_limits(["default"], 0.1) is False


class _Died(Exception):
    pass


async def test_a_finish_failing_after_the_transfer_lists_its_claims_again(url: str) -> None:
    """The transfer's write goes with the completion writes; when the finish fails
    after them, the finished claims are listed in the key's record again (a task whose
    completion may be lost counts as running until its lease lapses)."""
    async with open_storage(url) as be:
        q: Any = be.tasks
        capped = [task(max_concurrency=1, limit_key="k") for _ in range(3)]
        child = task(depends_on=(capped[0].id,))
        await q.enqueue([*capped, child])
        [c] = await q.claim(["default"], "w", limit=10)
        assert c.task.id == capped[0].id

        def die(point: str) -> None:
            if point == "resolve":  # after the completion batch, dependents to release
                raise _Died(point)

        q.crash_hook = die
        result = _result(c.task.id)
        with pytest.raises(_Died):
            await _finish_and_claim(be, c, result, 1)
        q.crash_hook = None
        raw, _ = await q._be.js.kv_get(q._be.queues_bucket, _flow.limit_kv_key("k"))
        listed = {(x.id, x.token) for x in _flow._dec.decode(raw).claims}
        assert (c.task.id, c.token) in listed


async def test_a_transfer_short_of_room_admits_the_rest(url: str) -> None:
    """A transfer counts every claim its record lists (a finished one another client
    did not drop too): the usual admission, which drops those, takes the rest."""
    async with open_storage(url) as be:
        q: Any = be.tasks
        capped = [task(max_concurrency=2, limit_key="k2") for _ in range(5)]
        await q.enqueue(capped)
        first = await q.claim(["default"], "w", limit=10)
        assert [x.task.id for x in first] == [t.id for t in capped[:2]]
        a, b = first
        await q.complete([Completion(a.task.id, a.token)])  # still listed in the record
        result = _result(b.task.id)
        done = await _finish_and_claim(be, b, result, 2)
        assert done is not None
        _, claims = done
        assert [x.task.id for x in claims] == [t.id for t in capped[2:4]]
        assert await q.count(status=TaskStatus.RUNNING) == 2
        assert await q.claim_limited(["default"], "w", limit=10) == []
