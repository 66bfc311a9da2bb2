"""Flow limits in the claim: ``max_concurrency`` and ``rate_limit`` per limit key, held
tasks staying pending without an attempt, lapsed leases freeing slots, atomicity across
processes, and ``list_limits``."""

from __future__ import annotations

import time

import anyio
import pytest

from omniq.models import ClaimedTask, Payload, TaskResult, TaskStatus, now
from omniq.storage import Backend, Completion, LeaseRef, RetryRequest, TaskQueueStorage
from omniq.storage.testing import _mp
from omniq.storage.testing.helpers import poll_until, rs, task, tq

from ._multiprocess import _spawn

OTHER = "omniq.storage.testing._mp:claim_all"
"""A second function path (storage never calls it)."""


async def _claim_soon(q: TaskQueueStorage, worker: str = "w", limit: int = 10) -> list[ClaimedTask]:
    """Claim until something comes: a store may hand a held task out again only after a
    short delay (NATS redelivers held work after a back-off)."""
    return await poll_until(
        lambda: q.claim(["default"], worker, limit=limit), lambda x: len(x) > 0, deadline=10
    )


class TestFlowLimits:
    """``claim`` enforces ``max_concurrency`` and ``rate_limit`` per limit key."""

    pytestmark = pytest.mark.anyio

    async def test_max_concurrency_caps_running_tasks(self, store: Backend) -> None:
        q = tq(store)
        tasks = [task(max_concurrency=2) for _ in range(5)]
        await q.enqueue(tasks)
        first = await q.claim(["default"], "w1", limit=10)
        assert [c.task.id for c in first] == [t.id for t in tasks[:2]]
        assert await q.claim(["default"], "w2", limit=10) == []
        held = await q.get([t.id for t in tasks[2:]])
        assert all(t is not None and t.status is TaskStatus.PENDING for t in held)
        assert all(t is not None and t.attempt == 0 for t in held)  # no attempt consumed
        done = await q.complete([Completion(first[0].task.id, first[0].token)])
        assert done.done == [first[0].task.id]
        nxt = await _claim_soon(q, "w2")
        assert [c.task.id for c in nxt] == [tasks[2].id]
        assert nxt[0].task.attempt == 1

    async def test_held_task_does_not_block_the_tasks_behind_it(self, store: Backend) -> None:
        q = tq(store)
        limited = [task(priority=5, max_concurrency=1) for _ in range(3)]
        plain = [task() for _ in range(2)]
        await q.enqueue([*limited, *plain])
        got = await q.claim(["default"], "w", limit=10)
        assert {c.task.id for c in got} == {limited[0].id, *(t.id for t in plain)}

    async def test_claim_for_freed_slots_keeps_the_cap(self, store: Backend) -> None:
        """A worker that freed slots claims with ``claim_limited`` where the store has it
        (limited tasks only, in one step), else with ``claim``: the cap holds either way."""
        q = tq(store)
        claim = getattr(q, "claim_limited", q.claim)
        capped = [task(max_concurrency=2) for _ in range(4)]
        plain = task(priority=-1)
        await q.enqueue([*capped, plain])
        first = await claim(["default"], "w1", limit=10)
        ids = [c.task.id for c in first]
        assert ids[:2] == [t.id for t in capped[:2]]
        assert set(ids[2:]) <= {plain.id}
        assert getattr(q, "limited", None) == [capped[0].func]  # the key it held back
        await q.complete([Completion(first[0].task.id, first[0].token)])
        nxt = await poll_until(
            lambda: claim(["default"], "w2", limit=10),
            lambda x: any(c.task.id != plain.id for c in x),
            deadline=10,
        )
        assert [c.task.id for c in nxt if c.task.id != plain.id] == [capped[2].id]
        assert [c.task.id for c in await claim(["default"], "w2", limit=10)] in ([], [plain.id])

    async def test_finish_and_claim_takes_the_freed_slot(self, store: Backend) -> None:
        """``finish_and_claim`` (where the store has it; else ``finish`` then a claim):
        the outcome is stored and the freed slot goes to the key's next task, one only."""
        q, r = tq(store), rs(store)
        capped = [task(max_concurrency=1) for _ in range(3)]
        await q.enqueue(capped)
        [c] = await q.claim(["default"], "w", limit=5)
        result = TaskResult(
            task_id=c.task.id,
            status=TaskStatus.SUCCESS,
            payload=Payload("msgpack", b"\x2a"),
            attempts=1,
            finished_at=now(),
        )
        done = None
        both = getattr(q, "finish_and_claim", None)
        if both is not None:
            done = await both(
                [Completion(c.task.id, c.token)],
                [result],
                r,
                lease=30.0,
                queues=["default"],
                worker_id="w",
                limit=5,
            )
        if done is None:
            report = await q.finish([Completion(c.task.id, c.token)], [result], r, lease=30.0)
            claims = await _claim_soon(q, limit=5)
        else:
            report, claims = done
        assert report.done == [c.task.id] and report.stale == []
        assert [x.task.id for x in claims] == [capped[1].id]
        assert claims[0].task.status is TaskStatus.RUNNING and claims[0].task.attempt == 1
        assert await r.get_one(c.task.id) == result
        assert await q.claim(["default"], "w", limit=5) == []  # the cap still holds

    async def test_limit_key_is_shared_and_defaults_to_the_function(self, store: Backend) -> None:
        q = tq(store)
        a = task(max_concurrency=1, limit_key="shared")
        b = task(func=OTHER, max_concurrency=1, limit_key="shared")
        c = task(max_concurrency=1)
        d = task(func=OTHER, max_concurrency=1)
        await q.enqueue([a, b, c, d])
        got = await q.claim(["default"], "w", limit=10)
        assert {x.task.id for x in got} == {a.id, c.id, d.id}

    async def test_rate_limit_counts_starts_in_the_window(self, store: Backend) -> None:
        q = tq(store)
        tasks = [task(rate_limit="2/h") for _ in range(4)]
        await q.enqueue(tasks)
        got = await q.claim(["default"], "w", limit=10)
        assert [c.task.id for c in got] == [t.id for t in tasks[:2]]
        report = await q.complete([Completion(c.task.id, c.token) for c in got])
        assert sorted(report.done) == sorted(c.task.id for c in got)
        # finished or not, both starts stay inside the hour's window
        assert await q.claim(["default"], "w", limit=10) == []
        stored = await q.get([t.id for t in tasks[2:]])
        assert all(t is not None and t.attempt == 0 for t in stored)

    async def test_rate_window_rolls(self, store: Backend) -> None:
        q = tq(store)
        tasks = [task(rate_limit="2/s") for _ in range(3)]
        await q.enqueue(tasks)
        assert len(await q.claim(["default"], "w", limit=10)) == 2
        got = await _claim_soon(q)
        assert [c.task.id for c in got] == [tasks[2].id]

    async def test_rate_holds_in_every_sliding_window_with_several_claimers(
        self, store: Backend
    ) -> None:
        """Four claimers at once: no window of ``per`` seconds anywhere (not only
        aligned ones) holds more than N starts, and no burst window more than the burst
        (``RateSpec.burst``: 10 of 20/s, in ``burst_window`` = 0.408 s)."""
        q = tq(store)
        tasks = [task(rate_limit="20/s", limit_key="slide") for _ in range(40)]
        await q.enqueue(tasks)
        spans: list[tuple[float, float, int]] = []  # (before, after, claimed) per claim
        deadline = time.monotonic() + 30

        async def claimer(name: str) -> None:
            while sum(n for _, _, n in spans) < len(tasks) and time.monotonic() < deadline:
                before = time.time()
                got = await q.claim(["default"], name, limit=20)
                if got:
                    spans.append((before, time.time(), len(got)))
                else:
                    await anyio.sleep(0.005)

        async with anyio.create_task_group() as tg:
            for i in range(4):
                tg.start_soon(claimer, f"w{i}")
        assert sum(n for _, _, n in spans) == len(tasks)

        def most_within(width: float) -> int:
            # claims whose whole call lies inside [b, b + width] started in that window
            return max(
                sum(n for b2, a2, n in spans if b2 >= b and a2 <= b + width) for b, _, _ in spans
            )

        assert most_within(1.0) <= 20
        assert most_within(0.4) <= 10

    async def test_dead_worker_slot_frees_when_its_lease_lapses(self, store: Backend) -> None:
        q = tq(store)
        a, b = task(max_concurrency=1), task(max_concurrency=1)
        await q.enqueue([a, b])
        [dead] = await q.claim(["default"], "dead-worker", lease=0.5)  # never renewed
        assert dead.task.id == a.id
        assert await q.claim(["default"], "w", limit=10) == []
        got = await poll_until(
            lambda: q.claim(["default"], "w", limit=1, lease=30),
            lambda x: len(x) > 0,
            deadline=10,
        )
        assert len(got) == 1
        assert await q.claim(["default"], "w", limit=10) == []  # still one at a time

    async def test_retry_and_release_free_the_slot(self, store: Backend) -> None:
        q = tq(store)
        a, b = task(max_concurrency=1), task(max_concurrency=1)
        await q.enqueue([a, b])
        [c1] = await q.claim(["default"], "w")
        assert await q.retry([RetryRequest(c1.task.id, c1.token, None)]) == []
        [c2] = await _claim_soon(q, limit=1)
        assert await q.claim(["default"], "w") == []
        assert await q.release([LeaseRef(c2.task.id, c2.token)]) == []
        assert len(await _claim_soon(q)) == 1

    async def test_defer_gives_the_attempt_back(self, store: Backend) -> None:
        q = tq(store)
        a = task(max_retries=0)
        await q.enqueue([a])
        [c] = await q.claim(["default"], "w")
        assert c.task.attempt == 1
        later = now() + 3600
        assert await q.defer([RetryRequest(a.id, c.token, later)]) == []
        got = await q.get_one(a.id)
        assert got is not None and got.status is TaskStatus.PENDING
        assert got.attempt == 0 and got.eta is not None and abs(got.eta - later) < 1e-3
        assert await q.claim(["default"], "w") == []  # not before its eta
        assert await q.defer([RetryRequest(a.id, c.token, later)]) == [a.id]  # stale now

    async def test_list_limits_shows_running_and_remaining_budget(self, store: Backend) -> None:
        q = tq(store)
        await q.enqueue(
            [task(max_concurrency=3, rate_limit="5/h", limit_key="k") for _ in range(4)]
        )
        await q.enqueue([task(max_concurrency=7, limit_key="other")])
        got = await q.claim(["default"], "w", limit=2)
        assert len(got) == 2
        info = {i.key: i for i in await q.list_limits()}
        k = info["k"]
        assert (k.running, k.max_concurrency, k.rate_limit, k.remaining) == (2, 3, "5/h", 3)
        o = info["other"]
        assert (o.running, o.max_concurrency, o.rate_limit, o.remaining) == (0, 7, None, None)


class TestFlowLimitsMultiprocess:
    """Four processes claiming at once never exceed a cap or a rate budget."""

    pytestmark = [pytest.mark.anyio, pytest.mark.backends_with("multiprocess"), pytest.mark.slow]

    async def test_cap_and_rate_hold_across_processes(
        self, store_and_url: tuple[Backend, str]
    ) -> None:
        store, url = store_and_url
        q = tq(store)
        capped = [task(max_concurrency=3, limit_key="cap") for _ in range(40)]
        rated = [task(rate_limit="5/h", limit_key="rate") for _ in range(40)]
        await q.enqueue(capped + rated)
        per_process = _spawn(4, _mp.claim_rounds, url, 30)
        claimed = [tid for ids in per_process for tid in ids]
        assert len(claimed) == len(set(claimed))
        cap_ids = {t.id for t in capped}
        assert sum(1 for t in claimed if t in cap_ids) == 3
        assert sum(1 for t in claimed if t not in cap_ids) == 5
