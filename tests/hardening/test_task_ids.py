"""Task ids from callers are checked before any store sees them: lookups by id (results,
tasks, events, dead letters, cancel) and hand-built Tasks given to enqueue raise
InvalidTaskError naming the id rules, on the embedded backends."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import pytest

from omniq.core import OmniQ
from omniq.models import InvalidTaskError, Task, TaskStatus
from omniq.queue import AsyncTaskQueue
from omniq.storage import open_storage

pytestmark = pytest.mark.anyio
BAD_IDS = ["../../../../etc/passwd", "a/b", "..", ".hidden", "x" * 129, "", "id with space"]
RULE = "A-Z a-z 0-9"  # the message names the id rules


@pytest.fixture(params=["memory", "file", "sqlite"])
async def oq(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[OmniQ]:
    url = {
        "memory": "memory://",
        "file": f"file://{tmp_path / 'store'}",
        "sqlite": f"sqlite:///{tmp_path / 'q.db'}",
    }[request.param]
    async with OmniQ(url) as q:
        yield q


@pytest.mark.parametrize("bad", BAD_IDS)
async def test_lookups_refuse_invalid_ids(oq: OmniQ, bad: str) -> None:
    ok = await oq.enqueue("hardening_tasks:noop")
    lookups = {
        "get_result": lambda: oq.get_result(bad),
        "get_result wait": lambda: oq.get_result(bad, wait=True, timeout=0.1),
        "get_task": lambda: oq.get_task(bad),
        "cancel": lambda: oq.cancel(bad),
        "get_events": lambda: oq.get_events(bad),
        "dead_letter": lambda: oq.dead_letter(bad),
        "requeue": lambda: oq.requeue([ok.id, bad]),
        "get_results": lambda: oq.queue.get_results([ok.id, bad]),
    }
    for name, call in lookups.items():
        with pytest.raises(InvalidTaskError, match=RULE):
            await call()
        assert (await oq.get_task(ok.id)) is not None, name  # nothing else was touched
    task = await oq.get_task(ok.id)
    assert task is not None and task.status is TaskStatus.PENDING  # requeue did nothing


async def test_file_backend_never_opens_a_path_outside_its_root(tmp_path: Path) -> None:
    secret = tmp_path / "outside.txt"
    secret.write_bytes(msgspec.msgpack.encode({"task_id": "x", "status": "success"}))
    async with OmniQ(f"file://{tmp_path / 'store'}") as oq:
        for bad in ("../outside.txt", "../../outside", str(secret)):
            with pytest.raises(InvalidTaskError):
                await oq.get_result(bad)


async def test_valid_ids_still_work(oq: OmniQ) -> None:
    [t] = await oq.enqueue_many([Task(func="hardening_tasks:noop", id="Report_2026-12-01:eu.1")])
    assert (await oq.get_task("Report_2026-12-01:eu.1")) is not None
    assert await oq.get_result("never-stored") is None
    assert await oq.cancel(t.id) is True


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"id": "../escape"}, "task id"),
        ({"id": ""}, "task id"),
        ({"queue": "a/b"}, "queue"),
        ({"priority": 2**40}, "priority"),
        ({"max_retries": -1}, "max_retries"),
        ({"depends_on": ("ok", "../x")}, "depends_on id"),
        ({"eta": float("nan")}, "eta"),
    ],
)
async def test_enqueue_validates_hand_built_tasks(
    oq: OmniQ, change: dict[str, object], named: str
) -> None:
    good = Task(func="hardening_tasks:noop")
    bad = msgspec.structs.replace(good, **change)  # type: ignore[arg-type]
    before = await oq.list_tasks()
    with pytest.raises(InvalidTaskError, match=named):
        await oq.enqueue_many([bad])
    with pytest.raises(InvalidTaskError, match=named):
        await oq.enqueue_many([good, bad])  # the whole batch is refused
    with pytest.raises(InvalidTaskError, match=named):
        await oq.queue.enqueue(bad)
    assert await oq.list_tasks() == before


async def test_async_task_queue_validates_hand_built_tasks(tmp_path: Path) -> None:
    async with open_storage(f"sqlite:///{tmp_path / 'q.db'}") as backend:
        assert backend.tasks is not None
        q = AsyncTaskQueue(backend.tasks, backend.results)
        bad = Task(func="m:f", id="../../etc/passwd")
        with pytest.raises(InvalidTaskError, match=RULE):
            await q.enqueue(bad)
        with pytest.raises(InvalidTaskError, match=RULE):
            await q.enqueue_many([bad])
        assert await backend.tasks.get_one("x") is None
        stored = await q.enqueue(Task(func="m:f", id="fine-id"))
        assert stored.id == "fine-id"
