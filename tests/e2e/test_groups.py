"""Chains and groups (``enqueue_chain``, ``enqueue_group``, ``get_group``) with a real
worker on each backend; each compiles to one ``enqueue_many`` storage call."""

from __future__ import annotations

from typing import Any

import group_tasks as g
import pytest

from omniq.core import OmniQ
from omniq.models import Group, TaskStatus, WorkflowError

pytestmark = pytest.mark.anyio

WAIT = 20.0


async def _count_enqueues(oq: OmniQ) -> list[int]:
    await oq.open()
    tasks = oq._session.queue.tasks  # type: ignore[union-attr]
    calls: list[int] = []
    # A batch with dependents goes through enqueue_with_results (which may call enqueue:
    # one storage call either way).
    inside = False

    def count(name: str) -> None:
        real = getattr(tasks, name)

        async def counted(batch: Any, *args: Any, **kwargs: Any) -> Any:
            nonlocal inside
            if inside:
                return await real(batch, *args, **kwargs)
            calls.append(len(batch))
            inside = True
            try:
                return await real(batch, *args, **kwargs)
            finally:
                inside = False

        setattr(tasks, name, counted)

    count("enqueue")
    count("enqueue_with_results")
    return calls


async def test_chain_passes_values_along_in_one_round_trip(oq: OmniQ) -> None:
    calls = await _count_enqueues(oq)
    chain = await oq.enqueue_chain(
        [oq.build(g.add, (1, 2)), oq.build(g.add, (10,)), oq.build(g.add, (100,))]
    )
    assert calls == [3]
    assert [t.depends_on for t in chain[1:]] == [(chain[0].id,), (chain[1].id,)]
    async with oq.worker(concurrency=2):
        last = await oq.get_result(chain[-1].id, wait=True, timeout=WAIT)
    assert last is not None and last.ok and last.value == 113


async def test_failing_link_stops_the_rest(oq: OmniQ) -> None:
    chain = await oq.enqueue_chain(
        [oq.build(g.add, (1, 2)), oq.build(g.fail), oq.build(g.add, (100,))]
    )
    async with oq.worker():
        last = await oq.get_result(chain[-1].id, wait=True, timeout=WAIT)
    assert last is not None and last.status is TaskStatus.CANCELLED
    failed = await oq.get_result(chain[1].id)
    assert failed is not None and failed.status is TaskStatus.ERROR


async def test_group_callback_gets_values_in_member_order(oq: OmniQ) -> None:
    calls = await _count_enqueues(oq)
    members = [oq.build(g.add, (i, i)) for i in range(5)]
    group = await oq.enqueue_group(members, then=oq.build(g.collect), then_if="succeeded")
    assert calls == [6]
    assert isinstance(group, Group) and group.id == members[0].id
    assert group.task_ids == tuple(m.id for m in members)
    assert group.callback is not None
    async with oq.worker(concurrency=4):
        r = await oq.get_result(group.callback.id, wait=True, timeout=WAIT)
    assert r is not None and r.ok and r.value == [0, 2, 4, 6, 8]
    status = await oq.get_group(group)
    assert status is not None and status.finished
    assert status.total == 5 and status.counts == {"success": 5}
    assert status.callback_id == group.callback.id


async def test_group_finished_callback_sees_failed_members(oq: OmniQ) -> None:
    group = await oq.enqueue_group(
        [oq.build(g.add, (1, 1)), oq.build(g.fail)], then=oq.build(g.collect)
    )
    assert group.callback is not None
    async with oq.worker(concurrency=2):
        r = await oq.get_result(group.callback.id, wait=True, timeout=WAIT)
    assert r is not None and r.ok
    ok, bad = r.value
    assert (ok["task_id"], ok["status"], ok["value"]) == (group.tasks[0].id, "success", 2)
    assert (bad["task_id"], bad["status"], bad["value"]) == (group.tasks[1].id, "error", None)
    assert "link failed" in bad["error"]["message"]
    status = await oq.get_group(group.id)
    assert status is not None and status.counts == {"success": 1, "error": 1}


async def test_group_succeeded_callback_skipped_when_a_member_fails(oq: OmniQ) -> None:
    group = await oq.enqueue_group(
        [oq.build(g.add, (1, 1)), oq.build(g.fail)], then=oq.build(g.collect), then_if="succeeded"
    )
    assert group.callback is not None
    async with oq.worker(concurrency=2):
        r = await oq.get_result(group.callback.id, wait=True, timeout=WAIT)
    assert r is not None and r.status is TaskStatus.CANCELLED


async def test_get_group_counts_while_pending_and_unknown(oq: OmniQ) -> None:
    group = await oq.enqueue_group([oq.build(g.add, (1, 1)) for _ in range(3)])
    status = await oq.get_group(group.id)
    assert status is not None and not status.finished
    assert status.total == 3 and status.counts == {"pending": 3}
    assert status.callback_id is None
    assert await oq.get_group(oq.build(g.add, (1, 1)).id) is None


async def test_bad_input_is_refused_before_storing(oq: OmniQ) -> None:
    calls = await _count_enqueues(oq)
    with pytest.raises(WorkflowError):
        await oq.enqueue_chain([])
    with pytest.raises(WorkflowError):
        await oq.enqueue_group([])
    with pytest.raises(WorkflowError):
        await oq.enqueue_group([oq.build(g.add, (1, 1)), "group_tasks:add"])  # type: ignore[list-item]
    a = oq.build(g.add, (1, 1))
    with pytest.raises(WorkflowError):
        await oq.enqueue_chain([a, a])
    with pytest.raises(WorkflowError):
        await oq.enqueue_chain([a, oq.build(g.add, (1,), depends_on=a)])
    stored = await oq.enqueue(g.add, (1, 1))
    n = len(calls)
    with pytest.raises(WorkflowError, match="already stored"):
        await oq.enqueue_group([oq.build(g.add, (2, 2)), stored])
    with pytest.raises(WorkflowError, match="already stored"):
        await oq.enqueue_chain([stored, oq.build(g.add, (1,))])
    assert len(calls) == n


def test_sync_twins(make_oq: Any) -> None:
    with make_oq() as oq:
        chain = oq.enqueue_chain_sync([oq.build(g.add, (1, 2)), oq.build(g.add, (3,))])
        group = oq.enqueue_group_sync([oq.build(g.add, (1, 1))], then=oq.build(g.collect))
        assert oq.get_group_sync(group.id) is not None
        oq.run_worker_sync(burst=True)
        assert oq.get_result_sync(chain[-1].id).value == 6
        cb = oq.get_result_sync(group.callback.id)
        assert cb.ok and [v["value"] for v in cb.value] == [2]
        assert oq.get_group_sync(group).counts == {"success": 1}
