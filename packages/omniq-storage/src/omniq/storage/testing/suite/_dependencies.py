"""Dependencies: release on success, cascade cancel on failure, the release policy."""

from __future__ import annotations

import pytest

from omniq.models import TaskStatus
from omniq.storage import Backend, Completion
from omniq.storage.testing.helpers import task, tq


class TestDependencies:
    """Dependencies: release on success, cascade cancel on failure, the release policy."""

    pytestmark = pytest.mark.anyio

    async def test_dependent_waits_then_released_on_success(self, store: Backend) -> None:
        q = tq(store)
        a, b = task(), task()
        child = task(depends_on=(a.id, b.id), priority=10)
        await q.enqueue([a, b, child])
        claimed = await q.claim(["default"], "w", limit=10)
        assert {c.task.id for c in claimed} == {a.id, b.id}
        by_id = {c.task.id: c for c in claimed}
        r1 = await q.complete([Completion(a.id, by_id[a.id].token)])
        assert r1.released == []
        assert await q.claim(["default"], "w") == []
        r2 = await q.complete([Completion(b.id, by_id[b.id].token)])
        assert r2.released == [child.id] and r2.cancelled == []
        [c] = await q.claim(["default"], "w")
        assert c.task.id == child.id

    async def test_cascade_cancel_on_failure(self, store: Backend) -> None:
        q = tq(store)
        root = task()
        mid = task(depends_on=(root.id,))
        leaf = task(depends_on=(mid.id,))
        other = task()
        await q.enqueue([root, mid, leaf, other])
        claimed = await q.claim(["default"], "w", limit=10)
        assert {c.task.id for c in claimed} == {root.id, other.id}
        tok = {c.task.id: c.token for c in claimed}
        report = await q.complete([Completion(root.id, tok[root.id], TaskStatus.ERROR)])
        assert report.done == [root.id]
        assert sorted(t.id for t in report.cancelled) == sorted([mid.id, leaf.id])
        for tid in (mid.id, leaf.id):
            got = await q.get_one(tid)
            assert got is not None and got.status is TaskStatus.CANCELLED
        # A task enqueued after its dependency failed is stored cancelled.
        [late] = await q.enqueue([task(depends_on=(root.id,))])
        assert late.status is TaskStatus.CANCELLED

    async def test_release_policy_runs_dependents_after_failure(self, store: Backend) -> None:
        q = tq(store)
        root = task()
        child = task(depends_on=(root.id,))
        await q.enqueue([root, child])
        [c] = await q.claim(["default"], "w", limit=10)
        report = await q.complete(
            [Completion(root.id, c.token, TaskStatus.ERROR)], dependency_policy="release"
        )
        assert report.released == [child.id] and report.cancelled == []
        [c2] = await q.claim(["default"], "w")
        assert c2.task.id == child.id
        [late] = await q.enqueue([task(depends_on=(root.id,))], dependency_policy="release")
        assert late.status is TaskStatus.PENDING
        [c3] = await q.claim(["default"], "w")
        assert c3.task.id == late.id

    async def test_cancel_cascades_to_dependents(self, store: Backend) -> None:
        q = tq(store)
        root = task()
        child = task(depends_on=(root.id,))
        grandchild = task(depends_on=(child.id,))
        await q.enqueue([root, child, grandchild])
        report = await q.cancel([root.id])
        assert report.done == [root.id]
        assert sorted(t.id for t in report.cancelled) == sorted([child.id, grandchild.id])
        assert await q.claim(["default"], "w", limit=10) == []

    async def test_expiry_resolves_dependents_like_failure(self, store: Backend) -> None:
        from omniq.models import now

        q = tq(store)
        root = task(expires_at=now() - 1)
        child = task(depends_on=(root.id,))
        await q.enqueue([root, child])
        report = await q.expire()
        assert report.done == [root.id]
        assert [t.id for t in report.cancelled] == [child.id]

    async def test_dependency_already_succeeded(self, store: Backend) -> None:
        q = tq(store)
        root = task()
        await q.enqueue([root])
        [c] = await q.claim(["default"], "w")
        await q.complete([Completion(root.id, c.token)])
        child = task(depends_on=(root.id,))
        await q.enqueue([child])
        [c2] = await q.claim(["default"], "w")
        assert c2.task.id == child.id

    async def test_dependency_enqueued_later_releases_waiting_dependent(
        self, store: Backend
    ) -> None:
        """A dependency id not enqueued yet keeps the dependent waiting; once that id is
        enqueued and succeeds, the dependent is released (not stranded)."""
        q = tq(store)
        root = task()
        child = task(depends_on=(root.id,))
        [stored] = await q.enqueue([child])
        assert stored.status is TaskStatus.PENDING
        assert await q.claim(["default"], "w") == []
        await q.enqueue([root])
        [c] = await q.claim(["default"], "w", limit=10)
        assert c.task.id == root.id
        report = await q.complete([Completion(root.id, c.token)])
        assert report.released == [child.id]
        [c2] = await q.claim(["default"], "w")
        assert c2.task.id == child.id
