"""Unique jobs end to end: ``unique_for``, ``key="args"`` and ``on_conflict`` on
build/enqueue/enqueue_many/@oq.task, a finished task returned inside its window, and a
debounced (replaced) pending task run by a worker with the last arguments."""

from __future__ import annotations

from datetime import timedelta

import e2e_tasks as t
import pytest

from omniq.core import OmniQ
from omniq.models import InvalidTaskError, TaskStatus

pytestmark = pytest.mark.anyio
WAIT = 30.0


def test_options_are_checked_and_reach_the_task() -> None:
    with OmniQ("memory://") as oq:
        task = oq.build(t.add, (1, 2), key="k", unique_for=60, on_conflict="replace")
        assert (task.key, task.unique_for, task.on_conflict) == ("k", 60.0, "replace")
        plain = oq.build(t.add, (1, 2), key="k", on_conflict="return")
        assert plain.on_conflict is None  # the default, not stored
        assert oq.build(t.add, (1, 2), key="k", unique_for=timedelta(minutes=1)).unique_for == 60
        bad: list[dict[str, object]] = [
            {"key": "k", "unique_for": -1},
            {"key": "k", "unique_for": float("inf")},
            {"key": "k", "unique_for": "60"},
            {"key": "k", "on_conflict": "merge"},
            {"unique_for": 60},
            {"on_conflict": "replace"},
        ]
        for options in bad:
            with pytest.raises(InvalidTaskError):
                oq.build(t.add, (1, 2), **options)  # type: ignore[arg-type]

        a = oq.build(t.add, (1, 2), key="args")
        assert a.key is not None and a.key.startswith("args:")
        assert oq.build(t.add, [1, 2], key="args").key == a.key  # list or tuple alike
        assert oq.build(t.add, (2, 1), key="args").key != a.key
        assert oq.build(t.add, (), {"a": 1, "b": 2}, key="args").key == (
            oq.build(t.add, (), {"b": 2, "a": 1}, key="args").key
        )
        assert oq.build(t.add, (1,), {"b": 2}, key="args").key != a.key
        assert oq.build(t.slow, (1,), key="args").key != oq.build(t.add, (1,), key="args").key
        with pytest.raises(InvalidTaskError, match="msgspec-encodable"):
            oq.build(t.add, (object(), 2), key="args")

        job = oq.task(key="args", unique_for=30)(t.add)
        built = job.build(3, 4)
        assert built.unique_for == 30 and built.key == oq.build(t.add, (3, 4), key="args").key
        [many] = oq.enqueue_many_sync([(t.add, (1, 2))], key="m", unique_for=5)
        assert (many.key, many.unique_for) == ("m", 5.0)


async def test_finished_task_is_returned_inside_its_window(oq: OmniQ) -> None:
    first = await oq.enqueue(t.add, (2, 3), key="args", unique_for=3600)
    async with oq.worker(concurrency=1):
        r = await oq.get_result(first.id, wait=True, timeout=WAIT)
    assert r is not None and r.ok and r.value == 5
    again = await oq.enqueue(t.add, (2, 3), key="args")
    assert again.id == first.id and again.status is TaskStatus.SUCCESS
    other = await oq.enqueue(t.add, (3, 3), key="args")
    assert other.id != first.id


async def test_replace_debounces_a_pending_task(oq: OmniQ) -> None:
    first = await oq.enqueue(t.add, (1, 1), key="debounce", delay=3600)
    second = await oq.enqueue(t.add, (10, 20), key="debounce", on_conflict="replace")
    assert second.id == first.id
    async with oq.worker(concurrency=1):
        r = await oq.get_result(first.id, wait=True, timeout=WAIT)
    assert r is not None and r.ok and r.value == 30
    stored = await oq.get_task(first.id)
    assert stored is not None and stored.status is TaskStatus.SUCCESS
