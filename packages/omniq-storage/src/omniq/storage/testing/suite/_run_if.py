"""Conditional dependents (``Task.run_if``): released once every dependency has ended,
whatever each ended in and whatever the dependency policy, inside the same atomic step
as the completion, cancellation or expiry that ended the last one."""

from __future__ import annotations

import pytest

from omniq.models import TaskStatus, now
from omniq.storage import Backend, Completion
from omniq.storage.testing.helpers import task, tq


class TestRunIf:
    """Conditional dependents: the store releases them on any ending of their
    dependencies (the worker checks the condition when it claims them)."""

    pytestmark = pytest.mark.anyio

    @pytest.mark.parametrize("status", [TaskStatus.SUCCESS, TaskStatus.ERROR])
    async def test_released_by_completion_whatever_its_status(
        self, store: Backend, status: TaskStatus
    ) -> None:
        q = tq(store)
        parent = task()
        on_ok = task(depends_on=(parent.id,), run_if="succeeded")
        on_fail = task(depends_on=(parent.id,), run_if="failed")
        plain = task(depends_on=(parent.id,))
        await q.enqueue([parent, on_ok, on_fail, plain])
        [c] = await q.claim(["default"], "w", limit=10)
        assert c.task.id == parent.id
        report = await q.complete([Completion(parent.id, c.token, status)])
        ok = status is TaskStatus.SUCCESS
        released = {on_ok.id, on_fail.id} | ({plain.id} if ok else set())
        assert set(report.released) == released
        assert [t.id for t in report.cancelled] == ([] if ok else [plain.id])
        claimed = await q.claim(["default"], "w", limit=10)
        assert {x.task.id for x in claimed} == released
        got = {x.task.id: x.task for x in claimed}
        assert got[on_fail.id].run_if == "failed" and got[on_ok.id].run_if == "succeeded"

    async def test_waits_for_every_dependency(self, store: Backend) -> None:
        q = tq(store)
        a, b = task(), task()
        then = task(depends_on=(a.id, b.id), run_if="finished")
        await q.enqueue([a, b, then])
        claimed = {c.task.id: c for c in await q.claim(["default"], "w", limit=10)}
        assert set(claimed) == {a.id, b.id}
        r1 = await q.complete([Completion(a.id, claimed[a.id].token, TaskStatus.ERROR)])
        assert r1.released == [] and r1.cancelled == []
        assert await q.claim(["default"], "w") == []
        r2 = await q.complete([Completion(b.id, claimed[b.id].token)])
        assert r2.released == [then.id]
        [c] = await q.claim(["default"], "w")
        assert c.task.id == then.id

    async def test_released_by_cancel_and_by_cascade(self, store: Backend) -> None:
        q = tq(store)
        root = task()
        mid = task(depends_on=(root.id,))
        on_root = task(depends_on=(root.id,), run_if="failed")
        on_mid = task(depends_on=(mid.id,), run_if="failed")
        await q.enqueue([root, mid, on_root, on_mid])
        report = await q.cancel([root.id])
        assert report.done == [root.id]
        assert [t.id for t in report.cancelled] == [mid.id]
        assert set(report.released) == {on_root.id, on_mid.id}
        claimed = await q.claim(["default"], "w", limit=10)
        assert {c.task.id for c in claimed} == {on_root.id, on_mid.id}

    async def test_released_by_expiry(self, store: Backend) -> None:
        q = tq(store)
        doomed = task(expires_at=now() - 1.0)
        on_fail = task(depends_on=(doomed.id,), run_if="failed")
        await q.enqueue([doomed, on_fail])
        report = await q.expire()
        assert report.done == [doomed.id]
        assert report.released == [on_fail.id] and report.cancelled == []
        [c] = await q.claim(["default"], "w", limit=10)
        assert c.task.id == on_fail.id

    async def test_enqueued_after_its_dependency_failed(self, store: Backend) -> None:
        q = tq(store)
        root = task()
        await q.enqueue([root])
        [c] = await q.claim(["default"], "w")
        await q.complete([Completion(root.id, c.token, TaskStatus.ERROR)])
        [late] = await q.enqueue([task(depends_on=(root.id,), run_if="failed")])
        assert late.status is TaskStatus.PENDING
        [c2] = await q.claim(["default"], "w")
        assert c2.task.id == late.id
