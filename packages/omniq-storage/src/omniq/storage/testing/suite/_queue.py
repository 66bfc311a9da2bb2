"""Task queue contract: ordering, eta, leases, fencing, idempotency, cancel, TTL, admin."""

from __future__ import annotations

import time

import anyio
import pytest

from omniq.models import TaskStatus, now
from omniq.storage import Backend, Completion, LeaseRef, RetryRequest
from omniq.storage.testing.helpers import poll_until, task, tq


class TestQueue:
    """Task queue contract: ordering, eta, leases, fencing, idempotency, cancel, TTL, admin."""

    pytestmark = pytest.mark.anyio

    async def test_priority_then_fifo(self, store: Backend) -> None:
        q = tq(store)
        low1, high1, low2, high2, mid = (
            task(priority=0),
            task(priority=5),
            task(priority=0),
            task(priority=5),
            task(priority=2),
        )
        await q.enqueue([low1, high1])
        await q.enqueue([low2, high2, mid])
        claimed = await q.claim(["default"], "w1", limit=3)
        assert [c.task.id for c in claimed] == [high1.id, high2.id, mid.id]
        rest = []
        for _ in range(3):
            rest += await q.claim(["default"], "w1", limit=1)
        assert [c.task.id for c in rest] == [low1.id, low2.id]

    async def test_higher_priority_enqueued_between_claims_goes_first(self, store: Backend) -> None:
        q = tq(store)
        lows = [task(priority=0) for _ in range(3)]
        await q.enqueue(lows)
        assert [c.task.id for c in await q.claim(["default"], "w", limit=1)] == [lows[0].id]
        high = task(priority=5)
        await q.enqueue([high])
        assert [c.task.id for c in await q.claim(["default"], "w", limit=1)] == [high.id]
        rest = await q.claim(["default"], "w", limit=10)
        assert [c.task.id for c in rest] == [lows[1].id, lows[2].id]

    async def test_claim_sets_running_attempt_and_lease(self, store: Backend) -> None:
        q = tq(store)
        t = task()
        [stored] = await q.enqueue([t])
        assert stored.status is TaskStatus.PENDING and stored.attempt == 0
        before = now()
        [c] = await q.claim(["default"], "w1", lease=10)
        assert c.task.id == t.id and c.worker_id == "w1"
        assert c.task.status is TaskStatus.RUNNING and c.task.attempt == 1
        assert before + 9 < c.lease_expires_at < now() + 11
        got = await q.get_one(t.id)
        assert got is not None and got.status is TaskStatus.RUNNING and got.attempt == 1
        assert await q.claim(["default"], "w2") == []

    async def test_claim_only_named_queues(self, store: Backend) -> None:
        q = tq(store)
        a, b, c = task(queue="a"), task(queue="b", priority=3), task(queue="c")
        await q.enqueue([a, b, c])
        claimed = await q.claim(["a", "b"], "w", limit=10)
        assert [x.task.id for x in claimed] == [b.id, a.id]
        assert [x.task.id for x in await q.claim(["c"], "w")] == [c.id]

    async def test_eta_respected(self, store: Backend) -> None:
        q = tq(store)
        later = task(eta=now() + 1.0, priority=9)  # margin for a loaded machine
        soon = task()
        await q.enqueue([later, soon])
        claimed = await q.claim(["default"], "w", limit=10)
        assert [c.task.id for c in claimed] == [soon.id]
        again = await poll_until(lambda: q.claim(["default"], "w", limit=10), bool)
        assert [c.task.id for c in again] == [later.id]
        assert again[0].task.eta is not None and now() >= again[0].task.eta

    async def test_lease_expiry_returns_task_with_attempt_kept(self, store: Backend) -> None:
        q = tq(store)
        t = task()
        await q.enqueue([t])
        [first] = await q.claim(["default"], "w1", lease=0.2)
        assert first.task.attempt == 1
        assert await q.claim(["default"], "w2") == []
        reclaimed = await poll_until(q.reclaim_expired, bool)
        assert reclaimed == [t.id]
        got = await q.get_one(t.id)
        assert got is not None and got.status is TaskStatus.PENDING and got.attempt == 1
        [second] = await q.claim(["default"], "w2", lease=30)
        assert second.task.attempt == 2 and second.token != first.token

    async def test_claim_reclaims_expired_inline_or_via_reclaim(self, store: Backend) -> None:
        q = tq(store)
        await q.enqueue([task()])
        await q.claim(["default"], "w1", lease=0.2)

        async def claim_or_reclaim() -> list[object]:
            got = await q.claim(["default"], "w2")
            if not got:
                await q.reclaim_expired()
                got = await q.claim(["default"], "w2")
            return list(got)

        [c] = await poll_until(claim_or_reclaim, bool)
        assert c.task.attempt == 2  # type: ignore[attr-defined]

    async def test_fencing_rejects_stale_worker(self, store: Backend) -> None:
        q = tq(store)
        t = task()
        await q.enqueue([t])
        [old] = await q.claim(["default"], "w1", lease=0.2)
        await poll_until(q.reclaim_expired, bool)
        [new] = await q.claim(["default"], "w2", lease=30)
        assert new.token != old.token
        stale_ref = LeaseRef.of(old)
        assert await q.renew([stale_ref], 30) == [t.id]
        assert await q.retry([RetryRequest(t.id, old.token)]) == [t.id]
        assert await q.release([stale_ref]) == [t.id]
        report = await q.complete([Completion(t.id, old.token, TaskStatus.ERROR)])
        assert report.stale == [t.id] and report.done == []
        got = await q.get_one(t.id)
        assert got is not None and got.status is TaskStatus.RUNNING and got.attempt == 2
        assert await q.renew([LeaseRef.of(new)], 30) == []
        report = await q.complete([Completion(t.id, new.token)])
        assert report.done == [t.id] and report.stale == []
        # A completed lease cannot be completed again.
        again = await q.complete([Completion(t.id, new.token)])
        assert again.stale == [t.id]
        got = await q.get_one(t.id)
        assert got is not None and got.status is TaskStatus.SUCCESS

    async def test_maintain_keeps_every_task_and_lease(self, store: Backend) -> None:
        """The sweep's housekeeping (``maintain``) returns at once and changes no task."""
        q = tq(store)
        a, b, c = task(), task(), task()
        await q.enqueue([a, b, c])
        [ca] = await q.claim(["default"], "w1")
        await q.complete([Completion(a.id, ca.token)])
        [cb] = await q.claim(["default"], "w1")
        for _ in range(3):
            await q.maintain()
        assert await q.renew([LeaseRef.of(cb)], 30.0) == []
        got = await q.get([a.id, b.id, c.id])
        assert [t.status if t else None for t in got] == [
            TaskStatus.SUCCESS,
            TaskStatus.RUNNING,
            TaskStatus.PENDING,
        ]

    async def test_renew_extends_lease(self, store: Backend) -> None:
        q = tq(store)
        t = task()
        await q.enqueue([t])
        [c] = await q.claim(["default"], "w1", lease=0.3)
        end = time.monotonic() + 0.9
        while time.monotonic() < end:
            assert await q.renew([LeaseRef.of(c)], 0.3) == []
            assert await q.reclaim_expired() == []
            await anyio.sleep(0.05)
        report = await q.complete([Completion(t.id, c.token)])
        assert report.done == [t.id]

    async def test_retry_and_release(self, store: Backend) -> None:
        q = tq(store)
        t = task()
        await q.enqueue([t])
        [c] = await q.claim(["default"], "w")
        assert await q.retry([RetryRequest(t.id, c.token, eta=now() + 0.2)]) == []
        got = await q.get_one(t.id)
        assert got is not None and got.status is TaskStatus.PENDING and got.attempt == 1
        assert await q.claim(["default"], "w") == []
        [c2] = await poll_until(lambda: q.claim(["default"], "w"), bool)
        assert c2.task.attempt == 2
        assert await q.release([LeaseRef.of(c2)]) == []
        got = await q.get_one(t.id)
        assert got is not None and got.status is TaskStatus.PENDING and got.attempt == 1
        [c3] = await q.claim(["default"], "w")
        assert c3.task.attempt == 2

    async def test_idempotency_key(self, store: Backend) -> None:
        q = tq(store)
        first = task(key="report-42")
        dup = task(key="report-42")
        [a] = await q.enqueue([first])
        [b] = await q.enqueue([dup])
        assert b.id == first.id == a.id
        assert await q.count() == 1
        # Same id twice is idempotent as well.
        [c] = await q.enqueue([first])
        assert c.id == first.id and await q.count() == 1
        [claimed] = await q.claim(["default"], "w")
        [d] = await q.enqueue([task(key="report-42")])
        assert d.id == first.id  # still live while running
        await q.complete([Completion(claimed.task.id, claimed.token)])
        fresh = task(key="report-42")
        [e] = await q.enqueue([fresh])
        assert e.id == fresh.id  # the key is free again once the task is terminal
        assert await q.count() == 2

    async def test_cancel(self, store: Backend) -> None:
        q = tq(store)
        pending, running, done = task(), task(), task(priority=-1)
        await q.enqueue([pending, running, done])
        [c] = await q.claim(["default"], "w", limit=1)
        assert c.task.id in (pending.id, running.id)
        running_id = c.task.id
        pending_id = pending.id if running_id == running.id else running.id
        report = await q.cancel([pending_id, running_id, "no-such-task"])
        assert sorted(report.done) == sorted([pending_id, running_id])
        assert (await q.complete([Completion(running_id, c.token)])).stale == [running_id]
        for tid in (pending_id, running_id):
            got = await q.get_one(tid)
            assert got is not None and got.status is TaskStatus.CANCELLED
        [last] = await q.claim(["default"], "w", limit=5)
        assert last.task.id == done.id
        await q.complete([Completion(done.id, last.token)])
        assert (await q.cancel([done.id])).done == []

    async def test_expire_ttl(self, store: Backend) -> None:
        q = tq(store)
        short = task(expires_at=now() + 0.2)
        keep = task(expires_at=now() + 3600)
        await q.enqueue([short, keep])
        assert (await q.expire()).done == []
        report = await poll_until(q.expire, lambda r: bool(r.done))
        assert report.done == [short.id]
        got = await q.get_one(short.id)
        assert got is not None and got.status is TaskStatus.EXPIRED
        claimed = await q.claim(["default"], "w", limit=10)
        assert [c.task.id for c in claimed] == [keep.id]

    async def test_expired_task_is_not_claimed(self, store: Backend) -> None:
        q = tq(store)
        gone = task(expires_at=now() - 1)
        await q.enqueue([gone])
        assert await q.claim(["default"], "w") == []
        assert (await q.expire()).done == [gone.id]

    async def test_counts_list_get_purge(self, store: Backend) -> None:
        q = tq(store)
        a = [task(queue="a") for _ in range(3)]
        b = [task(queue="b") for _ in range(2)]
        await q.enqueue(a)
        await q.enqueue(b)
        [c] = await q.claim(["a"], "w")
        await q.complete([Completion(c.task.id, c.token, TaskStatus.ERROR)])
        [c2] = await q.claim(["b"], "w")
        counts = await q.counts()
        assert counts == {
            ("a", TaskStatus.PENDING): 2,
            ("a", TaskStatus.ERROR): 1,
            ("b", TaskStatus.PENDING): 1,
            ("b", TaskStatus.RUNNING): 1,
        }
        assert await q.count() == 5
        assert await q.count(queue="a") == 3
        assert await q.count(status=TaskStatus.PENDING) == 3
        assert await q.count(queue="b", status=TaskStatus.RUNNING) == 1
        listed = await q.list(queue="a")
        assert [t.id for t in listed] == [t.id for t in a]
        assert [t.id for t in await q.list(limit=2, offset=1)] == [a[1].id, a[2].id]
        assert [t.id for t in await q.list(status=TaskStatus.RUNNING)] == [c2.task.id]
        got = await q.get([a[1].id, "missing", b[1].id])
        assert got[1] is None
        assert got[0] is not None and got[0].id == a[1].id and got[0].queue == "a"
        assert got[2] is not None and got[2].func == b[1].func
        assert await q.purge(finished_before=now() - 60) == 0
        assert await q.purge(finished_before=now() + 1) == 1
        assert await q.get_one(c.task.id) is None
        assert await q.count() == 4

    async def test_purge_finds_tasks_finished_after_an_earlier_purge(self, store: Backend) -> None:
        """A purge that found nothing (or purged some) must not hide tasks finished
        later: stores that skip scans when nothing can be due still purge them."""
        q = tq(store)
        await q.enqueue([task(queue="pf")])
        [c] = await q.claim(["pf"], "w")
        await q.complete([Completion(c.task.id, c.token, TaskStatus.SUCCESS)])
        assert await q.purge(finished_before=now() - 3600) == 0
        assert await q.purge(finished_before=now() + 1) == 1
        assert await q.purge(finished_before=now() - 3600) == 0
        await q.enqueue([task(queue="pf"), task(queue="pf")])
        done = await q.claim(["pf"], "w", limit=2)
        await q.complete([Completion(d.task.id, d.token, TaskStatus.ERROR) for d in done])
        assert await q.purge(finished_before=now() + 1, status=TaskStatus.SUCCESS) == 0
        assert await q.purge(finished_before=now() + 1) == 2
        assert await q.count() == 0

    async def test_round_trip_preserves_fields(self, store: Backend) -> None:
        from omniq.models import Payload

        q = tq(store)
        t = task(
            payload=Payload("msgpack", b"\x92\x90\x80"),
            priority=7,
            timeout=12.5,
            max_retries=3,
            metadata={"a": 1, "b": [1, 2]},
            queue="q1",
        )
        await q.enqueue([t])
        got = await q.get_one(t.id)
        assert got is not None
        assert got.payload == t.payload and got.metadata == t.metadata
        assert (got.priority, got.timeout, got.max_retries, got.queue) == (7, 12.5, 3, "q1")

    async def test_wait_for_work_wakes_on_enqueue(self, store: Backend) -> None:
        q = tq(store)
        assert await q.wait_for_work(["default"], 0.05) is False
        woke_at: list[float] = []

        async def waiter() -> None:
            assert await q.wait_for_work(["default"], 10.0)
            woke_at.append(time.monotonic())

        async with anyio.create_task_group() as tg:
            tg.start_soon(waiter)
            await anyio.sleep(0.05)  # let the waiter park (not synchronization of the result)
            sent = time.monotonic()
            await q.enqueue([task()])
        assert woke_at and woke_at[0] - sent < 1.0
        assert await q.wait_for_work(["default"], 10.0) is True  # ready work: returns at once

    async def test_wait_for_work_wakes_at_eta(self, store: Backend) -> None:
        q = tq(store)
        await q.enqueue([task(eta=now() + 0.2)])
        start = time.monotonic()
        assert await q.wait_for_work(["default"], 5.0)
        assert time.monotonic() - start < 2.0
