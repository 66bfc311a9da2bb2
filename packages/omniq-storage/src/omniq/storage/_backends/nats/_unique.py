"""Unique jobs on NATS: the key's holder (bound in the keys bucket by a revision-checked
write) keeps the key while it is live or inside its ``unique_for`` window; with
``on_conflict="replace"`` a pending holder takes the new payload and eta by a
revision-checked write of its record that bumps its generation, so the work or eta
message announcing the old version is ignored and a new one is published."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import msgspec

from omniq.models import Task, TaskStatus
from omniq.storage._corrupt import CORRUPT_FUNC

__all__ = ["replace_holder"]


async def replace_holder(
    new: Task,
    holder: Task,
    change: Callable[..., Awaitable[Any]],
    ready: Callable[[Any, int], Awaitable[None]],
) -> Task:
    """``holder`` after ``new``'s ``on_conflict`` applied (see the module docstring)."""
    if new.on_conflict != "replace" or holder.status is not TaskStatus.PENDING:
        return holder
    if holder.func == CORRUPT_FUNC:
        return holder

    def fn(rec: Any) -> Any:
        if rec.task.status is not TaskStatus.PENDING:
            return None
        task = msgspec.structs.replace(rec.task, payload=new.payload, eta=new.eta)
        return msgspec.structs.replace(rec, task=task, gen=rec.gen + 1)

    done = await change(holder.id, fn)
    if done is None:
        return holder
    _, rec, rev = done
    if not rec.blocked:
        await ready(rec, rev)
    task: Task = rec.task
    return task
