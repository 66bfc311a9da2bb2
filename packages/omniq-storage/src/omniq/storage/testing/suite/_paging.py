"""Keyset paging: ``list_page`` returns the newest tasks below/above id bounds, filtered
by queue and status, newest first, so a dashboard pages through any number of tasks."""

from __future__ import annotations

import time

import pytest

from omniq.models import TaskStatus
from omniq.storage import Backend, Completion
from omniq.storage.testing.helpers import task, tq


class TestListPage:
    """TaskQueueStorage.list_page."""

    pytestmark = pytest.mark.anyio

    async def test_pages_newest_first_without_gaps_or_repeats(self, store: Backend) -> None:
        q = tq(store)
        tasks = [task(queue="a" if i % 3 else "b") for i in range(25)]
        await q.enqueue(tasks)
        newest_first = sorted((t.id for t in tasks), reverse=True)
        seen: list[str] = []
        before: str | None = None
        while True:
            page = await q.list_page(before=before, limit=7)
            if not page:
                break
            assert len(page) <= 7
            seen += [t.id for t in page]
            before = page[-1].id
        assert seen == newest_first

    async def test_filters_by_queue_status_and_id_window(self, store: Backend) -> None:
        q = tq(store)
        tasks = [task(queue="a" if i % 2 else "b") for i in range(12)]
        await q.enqueue(tasks)
        ids = sorted(t.id for t in tasks)
        in_a = sorted((t.id for t in tasks if t.queue == "a"), reverse=True)
        assert [t.id for t in await q.list_page(queue="a", limit=100)] == in_a
        page = await q.list_page(queue="a", before=in_a[1], limit=2)
        assert [t.id for t in page] == in_a[2:4]
        window = await q.list_page(after=ids[2], before=ids[8], limit=100)
        assert [t.id for t in window] == list(reversed(ids[3:8]))
        [claimed] = await q.claim(["b"], "w1", limit=1)
        await q.complete([Completion(claimed.task.id, claimed.token)])
        done = await q.list_page(status=TaskStatus.SUCCESS, limit=100)
        assert [t.id for t in done] == [claimed.task.id]
        assert done[0].status is TaskStatus.SUCCESS
        assert await q.list_page(queue="a", status=TaskStatus.SUCCESS) == []
        assert await q.list_page(limit=0) == []

    async def test_every_status_filter_finds_exactly_its_tasks(self, store: Backend) -> None:
        """Each status (the rare ones too, which an engine may index apart) is listed,
        paged and counted alike, alone and with a queue."""
        q = tq(store)
        tasks = [task(queue="a" if i % 2 else "b") for i in range(10)]
        stale = task(queue="a", expires_at=time.time() - 60)
        await q.enqueue([*tasks, stale])
        claimed = await q.claim(["a", "b"], "w1", limit=6)
        await q.complete([Completion(c.task.id, c.token, TaskStatus.ERROR) for c in claimed[:2]])
        await q.complete([Completion(claimed[2].task.id, claimed[2].token)])
        await q.cancel([claimed[3].task.id])
        await q.expire()
        every = {t.id: t for t in await q.list(limit=100)}
        for status in TaskStatus:
            want = sorted((i for i, t in every.items() if t.status is status), reverse=True)
            got = await q.list_page(status=status, limit=100)
            assert [t.id for t in got] == want, status
            assert await q.count(status=status) == len(want)
            assert [t.id for t in await q.list(status=status, limit=100)] == sorted(want)
            if len(want) > 1:
                page = await q.list_page(status=status, before=want[0], limit=1)
                assert [t.id for t in page] == want[1:2]
            for queue in ("a", "b"):
                mine = [i for i in want if every[i].queue == queue]
                got = await q.list_page(queue=queue, status=status, limit=100)
                assert [t.id for t in got] == mine, (status, queue)
        by_status = {s: sum(t.status is s for t in every.values()) for s in TaskStatus}
        assert by_status[TaskStatus.ERROR] == 2 and by_status[TaskStatus.RUNNING] == 2
        assert by_status[TaskStatus.CANCELLED] == 1 and by_status[TaskStatus.EXPIRED] == 1
