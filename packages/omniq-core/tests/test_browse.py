"""The facade's read-only views for dashboards: keyset task pages, results as stored,
event queries; on a real SQLite store."""

from __future__ import annotations

from pathlib import Path

from omniq.core import OmniQ
from omniq.models import EventType, TaskStatus


def test_task_page_stored_result_and_event_queries(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'oq.db'}"
    with OmniQ(url, event_storage=url) as oq:
        made = oq.enqueue_many_sync([("math:sqrt", (i,)) for i in range(7)], queue="b")
        newest = sorted((t.id for t in made), reverse=True)
        first = oq.task_page_sync(queue="b", limit=3)
        assert [t.id for t in first] == newest[:3]
        rest = oq.task_page_sync(queue="b", before=first[-1].id, limit=10)
        assert [t.id for t in rest] == newest[3:]
        assert oq.task_page_sync(status="success") == []
        oq.run_worker_sync(queues=["b"], burst=True, handle_signals=False)
        stored = oq.stored_result_sync(made[0].id)
        assert stored is not None and stored.status is TaskStatus.SUCCESS
        assert stored.value is None and stored.payload is not None  # not decoded
        done = oq.query_events_sync(types=[EventType.COMPLETE])
        assert sorted(e.task_id for e in done) == sorted(t.id for t in made)
        assert oq.query_events_sync(task_id=made[0].id, types=[EventType.ERROR]) == []
    with OmniQ(url) as plain:
        assert plain.query_events_sync() == []
