"""Task context support: progress fenced by the lease, and cancel notifications that
reach the watcher of the worker running the task (through another backend object on
the same store, where the backend can share one)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio
import pytest

from omniq.models import Progress, TaskStatus, now
from omniq.storage import Backend, LeaseRef, ProgressUpdate, TaskQueueStorage, open_storage
from omniq.storage.testing._specs import BackendSpec
from omniq.storage.testing.helpers import task, tq


def _p(done: float, total: float | None = None, message: str | None = None) -> Progress:
    return Progress(done=done, total=total, message=message, updated_at=now())


async def _watch_until_cancelled(watcher: TaskQueueStorage, canceller: TaskQueueStorage) -> None:
    """A watcher holding two running tasks reports exactly the one cancelled through
    ``canceller`` (``cancel`` then ``signal_cancel``), within a few seconds."""
    await canceller.enqueue([task(), task()])
    held = await watcher.claim(["default"], "w-watch", limit=2)
    assert len(held) == 2
    ids = {c.task.id for c in held}
    target, other = sorted(ids)
    seen: list[list[str]] = []
    got = anyio.Event()

    def on_cancel(cancelled: list[str]) -> None:
        seen.append(cancelled)
        got.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(watcher.watch_cancels, "w-watch", lambda: ids, on_cancel)
        await anyio.sleep(0.05)  # not a sync point: the watcher must also catch up by itself
        report = await canceller.cancel([target])
        assert report.done == [target]
        await canceller.signal_cancel(report.done)
        with anyio.fail_after(5):
            await got.wait()
        tg.cancel_scope.cancel()
    assert seen == [[target]]
    assert other in ids


class TestTaskControl:
    """``set_progress``/``get_progress`` and ``signal_cancel``/``watch_cancels``."""

    pytestmark = pytest.mark.anyio

    @pytest.fixture
    async def second(
        self, store_and_url: tuple[Backend, str], backend_spec: BackendSpec
    ) -> AsyncIterator[Backend | None]:
        """Another backend object on the same store (None where the backend cannot share)."""
        if not backend_spec.shared:
            yield None
            return
        async with open_storage(store_and_url[1]) as other:
            yield other

    async def test_progress_is_stored_fenced_by_the_lease(self, store: Backend) -> None:
        q = tq(store)
        a, b = task(), task()
        await q.enqueue([a, b])
        claimed = {c.task.id: c for c in await q.claim(["default"], "w", limit=2)}
        ca, cb = claimed[a.id], claimed[b.id]
        assert await q.get_progress([a.id, b.id]) == [None, None]
        stale = await q.set_progress(
            [
                ProgressUpdate(a.id, ca.token, _p(1, 10, "one")),
                ProgressUpdate(b.id, cb.token, _p(2)),
            ],
            30.0,
        )
        assert stale == []
        pa, pb = await q.get_progress([a.id, b.id])
        assert pa is not None and (pa.done, pa.total, pa.message) == (1, 10, "one")
        assert pb is not None and (pb.done, pb.total, pb.message) == (2, None, None)
        # The latest write wins.
        assert await q.set_progress([ProgressUpdate(a.id, ca.token, _p(5, 10, "five"))], 30.0) == []
        pa2 = (await q.get_progress([a.id]))[0]
        assert pa2 is not None and pa2.done == 5 and pa2.message == "five"
        # A stale token (wrong, or the task cancelled meanwhile) stores nothing.
        assert await q.set_progress([ProgressUpdate(a.id, "not-the-token", _p(9))], 30.0) == [a.id]
        await q.cancel([b.id])
        assert await q.set_progress([ProgressUpdate(b.id, cb.token, _p(9))], 30.0) == [b.id]
        pa3, pb3 = await q.get_progress([a.id, b.id])
        assert pa3 is not None and pa3.done == 5
        assert pb3 is not None and pb3.done == 2
        # It is a heartbeat too: the lease of a is still held and renewable.
        assert await q.renew([LeaseRef.of(ca)], 30.0) == []

    async def test_progress_of_unknown_tasks_is_none(self, store: Backend) -> None:
        assert await tq(store).get_progress(["nope-1", "nope-2"]) == [None, None]
        assert await tq(store).get_progress([]) == []

    async def test_progress_is_readable_through_another_backend_object(
        self, store: Backend, second: Backend | None
    ) -> None:
        if second is None:
            return  # one object per store: covered by the test above
        q = tq(store)
        t = task()
        await q.enqueue([t])
        [c] = await q.claim(["default"], "w")
        assert await q.set_progress([ProgressUpdate(t.id, c.token, _p(3, 4, "x"))], 30.0) == []
        got = (await tq(second).get_progress([t.id]))[0]
        assert got is not None and (got.done, got.total, got.message) == (3, 4, "x")

    async def test_cancel_reaches_the_watcher_of_the_same_object(self, store: Backend) -> None:
        q = tq(store)
        await _watch_until_cancelled(q, q)

    async def test_cancel_reaches_the_watcher_through_another_object(
        self, store: Backend, second: Backend | None
    ) -> None:
        if second is None:
            return  # the store cannot be shared by two objects
        await _watch_until_cancelled(tq(store), tq(second))

    async def test_a_watcher_reports_nothing_it_does_not_hold(self, store: Backend) -> None:
        q = tq(store)
        t = task()
        await q.enqueue([t])
        [c] = await q.claim(["default"], "w-other")
        seen: list[list[str]] = []
        async with anyio.create_task_group() as tg:
            tg.start_soon(q.watch_cancels, "w-idle", set, seen.append)
            report = await q.cancel([c.task.id])
            await q.signal_cancel(report.done)
            stored = await q.get_one(c.task.id)
            assert stored is not None and stored.status is TaskStatus.CANCELLED
            await anyio.sleep(0.5)  # give a wrong report time to show up (none may)
            tg.cancel_scope.cancel()
        assert seen == []
