"""Event storage: append, query by task/type/time range, purge by retention."""

from __future__ import annotations

import pytest

from omniq.models import EventType, TaskEvent, new_id
from omniq.storage import Backend
from omniq.storage.testing.helpers import es


def ev(task_id: str, type_: EventType, ts: float, **kw: object) -> TaskEvent:
    return TaskEvent(task_id=task_id, type=type_, timestamp=ts, **kw)  # type: ignore[arg-type]


class TestEvents:
    """Event storage: append, query by task/type/time range, purge by retention."""

    pytestmark = pytest.mark.anyio

    async def test_query_by_task_type_and_time(self, store: Backend) -> None:
        e = es(store)
        t1, t2 = new_id(), new_id()
        events = [
            ev(t1, EventType.ENQUEUED, 100.0, queue="q"),
            ev(t1, EventType.EXECUTING, 101.0, worker_id="w1", metadata={"attempt": 1}),
            ev(t2, EventType.ENQUEUED, 101.5),
            ev(t1, EventType.COMPLETE, 102.0, metadata={"duration": 0.5, "nested": {"x": [1]}}),
            ev(t2, EventType.ERROR, 103.0, metadata={"error": "boom"}),
        ]
        await e.append(events[3:])
        await e.append(events[:3])
        assert await e.count() == 5
        assert await e.query() == events
        assert await e.query(task_id=t1) == [events[0], events[1], events[3]]
        assert await e.query(types=[EventType.ENQUEUED]) == [events[0], events[2]]
        assert await e.query(types=[EventType.COMPLETE, EventType.ERROR], task_id=t2) == [events[4]]
        assert await e.query(since=101.0, until=103.0) == events[1:4]
        assert await e.query(since=101.0, limit=2) == events[1:3]
        assert await e.query(task_id="nobody") == []
        got = (await e.query(task_id=t1, types=[EventType.COMPLETE]))[0]
        assert got.metadata == {"duration": 0.5, "nested": {"x": [1]}}

    async def test_purge_by_age_and_keep_last(self, store: Backend) -> None:
        e = es(store)
        tid = new_id()
        events = [ev(tid, EventType.ENQUEUED, 1000.0 + i) for i in range(10)]
        await e.append(events)
        assert await e.purge(older_than=1003.0) == 3
        assert await e.query() == events[3:]
        assert await e.purge(keep_last=4) == 3
        assert await e.query() == events[6:]
        assert await e.purge(older_than=1007.0, keep_last=1) == 3
        assert await e.query() == events[9:]
        assert await e.count() == 1
        assert await e.purge(older_than=0.0) == 0
