"""The file journal replayed by another process (or a fresh backend object): dependents
a completion released are ready there too, whatever order the completion's frame lists
the task and its dependents in."""

from __future__ import annotations

from pathlib import Path

import pytest

from omniq.models import Task, TaskStatus, new_id
from omniq.storage import Completion, FileBackend
from omniq.storage.testing.helpers import NOOP

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("status", [TaskStatus.SUCCESS, TaskStatus.ERROR])
@pytest.mark.parametrize("when", ["synced-before", "fresh"])
async def test_released_dependents_are_ready_after_replay(
    tmp_path: Path, status: TaskStatus, when: str
) -> None:
    url = (tmp_path / "store").as_uri()
    a, b = FileBackend(url), FileBackend(url)
    await a.connect()
    await b.connect()
    try:
        assert a.tasks is not None and b.tasks is not None
        # Dependents made before their parent (as follow-ups built first are): their ids
        # sort first, so the completion's frame lists them before the parent.
        ids = [new_id() for _ in range(30)]
        parent = Task(func=NOOP)
        deps = (parent.id,)
        on_ok = [Task(func=NOOP, id=i, depends_on=deps, run_if="succeeded") for i in ids[:10]]
        on_fail = [Task(func=NOOP, id=i, depends_on=deps, run_if="failed") for i in ids[10:20]]
        plain = [Task(func=NOOP, id=i, depends_on=deps) for i in ids[20:]]
        await a.tasks.enqueue([parent, *on_ok, *on_fail, *plain])
        if when == "synced-before":  # b has read the enqueue: it sees the completion's frame
            assert await b.tasks.count(status=TaskStatus.PENDING) == 31
        [c] = await a.tasks.claim(["default"], "w")
        report = await a.tasks.complete([Completion(parent.id, c.token, status)])
        ok = status is TaskStatus.SUCCESS
        released = {t.id for t in on_ok + on_fail + (plain if ok else [])}
        assert set(report.released) == released
        reader = b
        if when == "fresh":
            reader = FileBackend(url)
            await reader.connect()
        assert reader.tasks is not None
        claimed = await reader.tasks.claim(["default"], "w2", limit=100)
        assert {x.task.id for x in claimed} == released
        if reader is not b:
            await reader.close()
    finally:
        await a.close()
        await b.close()
