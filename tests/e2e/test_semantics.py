"""End to end on every backend: results, retries, TTL, dependencies, callbacks,
idempotency, circuit breaker, graceful shutdown."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import e2e_tasks as t
import msgspec
import pytest

from omniq.core import OmniQ
from omniq.models import DependencyCycleError, EventType, TaskStatus, now
from omniq.queue import BreakerRegistry

pytestmark = pytest.mark.anyio
WAIT = 20.0


def types(events: list) -> list[EventType]:  # type: ignore[type-arg]
    return [e.type for e in events]


async def test_sync_and_async_functions_succeed_with_event_trail(oq: OmniQ) -> None:
    a = await oq.enqueue(t.add, (2, 3))
    b = await oq.enqueue("e2e_tasks:async_mul", (4, 5))
    async with oq.worker(concurrency=4):
        ra = await oq.get_result(a.id, wait=True, timeout=WAIT)
        rb = await oq.get_result(b.id, wait=True, timeout=WAIT)
    assert ra is not None and ra.status is TaskStatus.SUCCESS and ra.value == 5
    assert rb is not None and rb.value == 20 and rb.attempts == 1
    assert ra.worker_id and ra.started_at and ra.finished_at and ra.expires_at
    assert types(await oq.get_events(a.id)) == [
        EventType.ENQUEUED,
        EventType.EXECUTING,
        EventType.COMPLETE,
    ]
    task = await oq.get_task(a.id)
    assert task is not None and task.status is TaskStatus.SUCCESS


async def test_retries_then_success(oq: OmniQ, tmp_path: Path) -> None:
    task = await oq.enqueue(t.flaky, (str(tmp_path / "n"), 2), max_retries=3, retry_delay=0.01)
    async with oq.worker():
        r = await oq.get_result(task.id, wait=True, timeout=WAIT)
    assert r is not None and r.ok and r.value == "ok after 3" and r.attempts == 3
    evs = await oq.get_events(task.id)
    retries = [e for e in evs if e.type is EventType.RETRY]
    assert len(retries) == 2
    for i, e in enumerate(retries, start=1):
        assert e.metadata["error_type"] == "ValueError"
        assert 0 <= e.metadata["delay"] <= 0.01 * 2 ** (i - 1)


async def test_final_failure_stores_error_result(oq: OmniQ) -> None:
    task = await oq.enqueue(t.always_fails, ("bad",), max_retries=2, retry_delay=0.001)
    async with oq.worker():
        r = await oq.get_result(task.id, wait=True, timeout=WAIT)
    assert r is not None and r.status is TaskStatus.ERROR and r.attempts == 3
    assert r.error is not None and r.error.type == "RuntimeError" and r.error.message == "bad"
    assert r.error.traceback and "always_fails" in r.error.traceback
    evs = types(await oq.get_events(task.id))
    assert evs.count(EventType.RETRY) == 2 and evs[-1] is EventType.ERROR


async def test_timeout_is_an_error(oq: OmniQ) -> None:
    task = await oq.enqueue(t.slow, (5.0,), timeout=0.2, max_retries=0)
    async with oq.worker(concurrency=2):
        r = await oq.get_result(task.id, wait=True, timeout=WAIT)
    assert r is not None and r.status is TaskStatus.ERROR
    assert r.error is not None and "Timeout" in r.error.type


async def test_expired_task_never_runs(oq: OmniQ, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    built = oq.build(t.record, (str(marker), "x"))
    stale = msgspec.structs.replace(built, expires_at=now() - 1.0)
    dependent = oq.build(t.add, (1, 1), depends_on=stale)
    await oq.enqueue_many([stale, dependent])
    async with oq.worker():
        r = await oq.get_result(stale.id, wait=True, timeout=WAIT)
        rd = await oq.get_result(dependent.id, wait=True, timeout=WAIT)
    assert r is not None and r.status is TaskStatus.EXPIRED
    assert r.error is not None and "Expired" in r.error.type
    assert rd is not None and rd.status is TaskStatus.CANCELLED
    assert not marker.exists()
    assert EventType.EXPIRED in types(await oq.get_events(stale.id))
    assert EventType.EXECUTING not in types(await oq.get_events(stale.id))


async def test_results_expire_after_result_ttl(make_oq: Callable[..., OmniQ]) -> None:
    import anyio

    async with make_oq(result_ttl=0.5) as oq:
        task = await oq.enqueue(t.add, (1, 2))
        async with oq.worker():
            r = await oq.get_result(task.id, wait=True, timeout=WAIT)
        assert r is not None and r.expires_at is not None
        assert r.expires_at - r.finished_at == pytest.approx(0.5)  # type: ignore[operator]
        deadline = now() + WAIT
        while await oq.get_result(task.id) is not None:
            assert now() < deadline, "result outlived RESULT_TTL"
            await anyio.sleep(0.05)


async def test_dependency_chain_runs_in_order(oq: OmniQ, tmp_path: Path) -> None:
    log = str(tmp_path / "order")
    a = oq.build(t.record, (log, "a"))
    b = oq.build(t.record, (log, "b"), depends_on=a)
    c = oq.build(t.record, (log, "c"), depends_on=[a, b])
    await oq.enqueue_many([c, b, a])  # order in the batch does not matter
    assert (await oq.get_task(c.id)).status is TaskStatus.PENDING  # type: ignore[union-attr]
    async with oq.worker(concurrency=8):
        rc = await oq.get_result(c.id, wait=True, timeout=WAIT)
    assert rc is not None and rc.ok
    assert t.read_file(log).split() == ["a", "b", "c"]


async def test_failed_dependency_cancels_dependents(oq: OmniQ) -> None:
    a = oq.build(t.always_fails, max_retries=0)
    b = oq.build(t.add, (1, 2), depends_on=a)
    c = oq.build(t.add, (3, 4), depends_on=b)
    await oq.enqueue_many([a, b, c])
    async with oq.worker():
        rc = await oq.get_result(c.id, wait=True, timeout=WAIT)
    rb = await oq.get_result(b.id)
    assert rb is not None and rb.status is TaskStatus.CANCELLED
    assert rc is not None and rc.status is TaskStatus.CANCELLED
    assert EventType.CANCELLED in types(await oq.get_events(c.id))


async def test_cycle_rejected_at_enqueue(oq: OmniQ) -> None:
    a = oq.build(t.add, (1, 1))
    b = oq.build(t.add, (1, 1), depends_on=a)
    a = msgspec.structs.replace(a, depends_on=(b.id,))
    with pytest.raises(DependencyCycleError):
        await oq.enqueue_many([a, b])
    assert await oq.get_task(a.id) is None and await oq.get_task(b.id) is None
    stored = await oq.enqueue(t.add, (1, 1))
    loop = oq.build(t.add, (2, 2), depends_on=stored, task_id=None)
    await oq.enqueue_many([loop])  # depending on a stored task is fine


async def test_user_cancel(oq: OmniQ) -> None:
    a = await oq.enqueue(t.add, (1, 1), delay=3600)
    b = await oq.enqueue(t.add, (1, 1), depends_on=a)
    assert await oq.cancel(a.id)
    assert not await oq.cancel(a.id)
    ra, rb = await oq.get_result(a.id), await oq.get_result(b.id)
    assert ra is not None and ra.status is TaskStatus.CANCELLED
    assert rb is not None and rb.status is TaskStatus.CANCELLED


async def test_callbacks_enqueue_follow_ups(oq: OmniQ, tmp_path: Path) -> None:
    log = str(tmp_path / "cb")
    ok_cb = oq.build(t.record, (log, "success-callback"))
    fail_cb = oq.build(t.record_failure, (log, "failure-callback"))
    good = await oq.enqueue(t.add, (1, 2), on_success=ok_cb, on_failure=fail_cb)
    bad = await oq.enqueue(
        t.always_fails, max_retries=0, on_success=oq.build(t.record, (log, "never"))
    )
    bad_cb = (await oq.get_task(bad.id)).on_failure  # type: ignore[union-attr]
    assert bad_cb == ()
    # A built follow-up is one task, stored with its parent: each parent gets its own.
    fail_cb2 = oq.build(t.record_failure, (log, "failure-callback-2"))
    bad2 = await oq.enqueue(t.always_fails, max_retries=0, on_failure=fail_cb2)
    async with oq.worker():
        r1 = await oq.get_result(ok_cb.id, wait=True, timeout=WAIT)
        r2 = await oq.get_result(fail_cb2.id, wait=True, timeout=WAIT)
        skipped = await oq.get_result(fail_cb.id, wait=True, timeout=WAIT)
        await oq.get_result(good.id, wait=True, timeout=WAIT)
        await oq.get_result(bad2.id, wait=True, timeout=WAIT)
    assert r1 is not None and r1.value == "success-callback"
    assert r2 is not None and r2.value == "failure-callback-2 error"
    # good succeeded: its on_failure follow-up ended cancelled without running.
    assert skipped is not None and skipped.status is TaskStatus.CANCELLED
    assert "failure-callback error\n" not in t.read_file(log)
    assert "never" not in t.read_file(log)


async def test_idempotency_key(oq: OmniQ) -> None:
    first = await oq.enqueue(t.add, (1, 2), key="once", delay=3600)
    second = await oq.enqueue(t.add, (5, 5), key="once")
    assert second.id == first.id
    assert len(await oq.list_tasks()) == 1


async def test_circuit_breaker_defers_instead_of_failing(
    make_oq: Callable[..., OmniQ],
) -> None:
    breakers = BreakerRegistry(threshold=2, cooldown=3600)
    async with make_oq(circuit_breaker=breakers) as oq:
        tasks = [
            await oq.enqueue(t.always_fails, max_retries=10, retry_delay=0.001) for _ in range(3)
        ]
        import anyio

        async with oq.worker():
            deadline = now() + WAIT
            while True:
                evs = [e for x in tasks for e in await oq.get_events(x.id)]
                if any(e.metadata.get("reason") == "circuit_open" for e in evs):
                    break
                assert now() < deadline, "no task was deferred"
                await anyio.sleep(0.02)
        assert breakers.allow("e2e_tasks:always_fails") is False
        statuses = [(await oq.get_task(x.id)).status for x in tasks]  # type: ignore[union-attr]
        assert TaskStatus.ERROR not in statuses
        assert [await oq.get_result(x.id) for x in tasks] == [None, None, None]
        failures = [e for e in evs if e.type is EventType.RETRY and "error_type" in e.metadata]
        # the breaker opened after 2 failures (one claimed batch may already be running);
        # everything after that was deferred, not run and failed
        assert len(failures) <= 3


async def test_graceful_shutdown_finishes_running_task(oq: OmniQ, tmp_path: Path) -> None:
    import anyio

    marker = tmp_path / "started"
    task = await oq.enqueue(t.mark_then_sleep, (str(marker), 0.3))
    async with oq.worker() as w:
        deadline = now() + WAIT
        while not marker.exists():
            assert now() < deadline
            await anyio.sleep(0.01)
    assert w.stats is not None and w.stats.succeeded == 1
    r = await oq.get_result(task.id)
    assert r is not None and r.ok and r.value == "slow done"


async def test_shutdown_hands_back_unstarted_and_overdue_tasks(
    make_oq: Callable[..., OmniQ], tmp_path: Path
) -> None:
    import anyio

    async with make_oq(shutdown_grace=0.1) as oq:
        marker = tmp_path / "started"
        task = await oq.enqueue(t.mark_then_sleep, (str(marker), 3.0))
        async with oq.worker() as w:
            deadline = now() + WAIT
            while not marker.exists():
                assert now() < deadline
                await anyio.sleep(0.01)
        assert w.stats is not None and w.stats.released == 1
        back = await oq.get_task(task.id)
        assert back is not None and back.status is TaskStatus.PENDING and back.attempt == 0
        assert await oq.get_result(task.id) is None
