"""Static typing checks of the public API, run by mypy (scripts/test), never executed.

``assert_type`` fails the type check when a revealed type changes; a ``type: ignore``
with a code marks a call that must stay a type error (strict mode reports the ignore as
unused if the error ever disappears).
"""

from __future__ import annotations

from typing import assert_type

from omniq.core import OmniQ
from omniq.models import Task, TaskResult, TaskStatus
from omniq.workers import PoolStats

oq = OmniQ("memory://")


@oq.task(max_retries=3)
def add(x: int, y: int) -> int:
    return x + y


@oq.task
async def fetch(url: str, *, retries: int = 1) -> bytes:
    return url.encode()


async def async_api() -> None:
    assert_type(add(1, 2), int)
    assert_type(await add.enqueue(1, 2), Task)
    assert_type(await fetch.enqueue("https://example.invalid", retries=2), Task)
    task = await oq.enqueue(add, (1, 2), priority=5, depends_on=[], key="k")
    assert_type(task, Task)
    assert_type(await oq.get_result(task.id, wait=True, timeout=1.0), TaskResult | None)
    assert_type(await oq.get_task(task.id), Task | None)
    assert_type(await oq.list_tasks(status=TaskStatus.ERROR), list[Task])
    assert_type(await oq.run_worker(burst=True), PoolStats)
    await add.enqueue("1", 2)  # type: ignore[arg-type]
    await fetch.enqueue("u", timeout=2)  # type: ignore[call-arg]


def sync_api() -> None:
    assert_type(add.enqueue_sync(1, 2), Task)
    task = oq.enqueue_sync("operator:add", (1, 2), queue="math", max_retries=2)
    assert_type(task, Task)
    assert_type(oq.get_result_sync(task.id), TaskResult | None)
    assert_type(oq.cancel_sync(task.id), bool)
    oq.enqueue_sync("operator:add", (1, 2), priorty=1)  # type: ignore[call-arg]
    add.enqueue_sync(1)  # type: ignore[call-arg]
    oq.enqueue_many_sync(["operator:add"], priority="high")  # type: ignore[arg-type]
    assert_type(oq.enqueue_many_sync(["operator:add"], queue="math"), list[Task])
