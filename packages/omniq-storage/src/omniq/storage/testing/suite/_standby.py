"""Standbys: a task claimed ahead to run in a running capped task's slot once that run
ends (``claim_standby``, on the stores whose spec says ``stands_by``). It is listed
behind the claim it stands by, so the two take one slot; one standby per claim, none
behind a claim that ended; a released standby goes back without an attempt, and so
does one whose worker died (once per task)."""

from __future__ import annotations

from typing import Any

import pytest

from omniq.models import TaskStatus
from omniq.storage import Backend, Completion, LeaseRef, open_storage
from omniq.storage.testing.helpers import poll_until, task, tq

Q = ["default"]


async def _freed(q: Any, worker: str) -> Any:
    """The claim a worker makes for slots it freed (``claim_limited`` where the store
    has one)."""
    claim = getattr(q, "claim_limited", None) or q.claim
    return await claim(Q, worker, limit=10)


async def _stand_by_soon(q: Any, behind: Any, lease: float) -> Any:
    """``claim_standby`` until it finds the candidate: a store may find candidates only
    among the work its last claims held back (NATS redelivers held work after a
    back-off), so each try claims first (nothing: the key is full)."""

    async def attempt() -> Any:
        assert await q.claim(Q, behind.worker_id, limit=10, lease=lease) == []
        return await q.claim_standby(Q, behind.worker_id, behind=behind, lease=lease)

    return await poll_until(attempt, lambda x: x is not None, deadline=10.0)


async def _running(q: Any) -> int:
    [info] = await q.list_limits()
    return int(info.running)


class TestStandby:
    """``claim_standby`` and the running counts around it."""

    pytestmark = [pytest.mark.anyio, pytest.mark.backends_with("stands_by")]

    async def test_a_standby_shares_its_claims_slot(self, store: Backend) -> None:
        q: Any = tq(store)
        capped = [task(max_concurrency=2, limit_key="k") for _ in range(5)]
        await q.enqueue(capped)
        first = await q.claim(Q, "w", limit=10)  # two run, the rest are held back
        assert [c.task.id for c in first] == [t.id for t in capped[:2]]
        a, b = first
        s = await q.claim_standby(Q, "w", behind=a, lease=30.0)
        assert s is not None and s.task.id == capped[2].id
        assert s.task.status is TaskStatus.RUNNING and s.task.attempt == 1
        [stored] = await q.get([s.task.id])
        assert stored.status is TaskStatus.RUNNING
        assert await _running(q) == 2  # a and its standby take one slot
        assert await q.claim_standby(Q, "w", behind=a, lease=30.0) is None  # one per claim
        assert await q.claim(Q, "other", limit=10) == []  # the cap holds
        assert await _freed(q, "other") == []

        await q.complete([Completion(a.task.id, a.token)])  # a's run ended: s takes its slot
        assert await _running(q) == 2
        assert await _freed(q, "other") == []
        assert await q.claim_standby(Q, "w", behind=a, lease=30.0) is None  # a ended

        t = await _stand_by_soon(q, s, 30.0)  # s runs now: a standby of its own
        assert t.task.id == capped[3].id
        await q.complete([Completion(b.task.id, b.token)])
        got = await poll_until(lambda: _freed(q, "other"), bool, deadline=10.0)  # b's slot
        assert [c.task.id for c in got] == [capped[4].id]
        assert await _running(q) == 2  # s (with t behind it) and capped[4]

    async def test_a_released_standby_goes_back_without_an_attempt(self, store: Backend) -> None:
        q: Any = tq(store)
        capped = [task(max_concurrency=1, limit_key="k") for _ in range(2)]
        await q.enqueue(capped)
        [a] = await q.claim(Q, "w", limit=10)
        s = await q.claim_standby(Q, "w", behind=a, lease=30.0)
        assert s is not None
        assert await q.release([LeaseRef.of(s)]) == []
        [back] = await q.get([s.task.id])
        assert back.status is TaskStatus.PENDING and back.attempt == 0
        await q.complete([Completion(a.task.id, a.token)])
        got = await poll_until(lambda: _freed(q, "other"), bool, deadline=10.0)
        assert [c.task.id for c in got] == [s.task.id] and got[0].task.attempt == 1

    async def test_a_dead_workers_standby_costs_no_attempt_once(self, store: Backend) -> None:
        """The holder dies (its leases lapse, unrenewed): the running task's attempt counts,
        the standby's is given back; the next lapse of that task counts."""
        q: Any = tq(store)
        capped = [task(max_concurrency=1, limit_key="k", max_retries=0) for _ in range(2)]
        await q.enqueue(capped)
        [a] = await q.claim(Q, "dead", limit=10, lease=0.3)
        s = await q.claim_standby(Q, "dead", behind=a, lease=0.3)
        assert s is not None

        async def states() -> list[Any]:
            await q.reclaim_expired()
            return list(await q.get([a.task.id, s.task.id]))

        ra, rs = await poll_until(
            states, lambda got: all(x.status is TaskStatus.PENDING for x in got), deadline=10.0
        )
        assert (ra.attempt, rs.attempt) == (1, 0)  # a ran when its worker died; s did not

        # s runs now (claimed for a's slot), and its worker dies as well: that counts.
        again = await poll_until(
            lambda: q.claim(Q, "dead", limit=10, lease=1.0), bool, deadline=10.0
        )
        [first] = again
        if first.task.id == a.task.id:  # a came first: s goes behind it again
            s2 = await _stand_by_soon(q, first, 0.3)
            assert s2.task.id == s.task.id
        _, rs = await poll_until(
            states,
            lambda got: got[1].status is TaskStatus.PENDING and got[1].attempt >= 1,
            deadline=10.0,
        )
        assert rs.attempt == 1  # spared once: this lapse counted

    @pytest.mark.backends_with("stands_by", "shared")
    async def test_another_connection_sees_the_standby_share_the_slot(
        self, store_and_url: tuple[Backend, str]
    ) -> None:
        """The standby is stored, not held in the claiming connection: another one
        counts it with its claim, refuses a second, and sees it take the slot."""
        store, url = store_and_url
        q: Any = tq(store)
        capped = [task(max_concurrency=1, limit_key="k") for _ in range(3)]
        await q.enqueue(capped)
        [a] = await q.claim(Q, "w", limit=10)
        s = await q.claim_standby(Q, "w", behind=a, lease=30.0)
        assert s is not None and s.task.id == capped[1].id
        async with open_storage(url) as other_store:
            other: Any = tq(other_store)
            assert await _running(other) == 1
            assert await other.claim_standby(Q, "x", behind=a, lease=30.0) is None
            assert await other.claim(Q, "x", limit=10) == []
            await q.complete([Completion(a.task.id, a.token)])
            assert await _running(other) == 1  # s holds the slot now
            assert await _freed(other, "x") == []
            await q.complete([Completion(s.task.id, s.token)])
            got = await poll_until(lambda: _freed(other, "x"), bool, deadline=10.0)
            assert [c.task.id for c in got] == [capped[2].id]
