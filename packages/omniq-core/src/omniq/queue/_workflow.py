"""Workflows over the store's conditional dependents (``Task.run_if``).

Enqueue side: ``expand`` turns each task's ``on_success``/``on_failure`` follow-ups into
tasks stored in the same batch, depending on it with ``run_if`` ``succeeded``/
``failed`` (an ``on_failure`` one also with ``pass_results``: it gets the failed task's
result). The store releases such a follow-up in the same atomic step as whatever
ended its task (a worker's completion, ``cancel``, a cascade, TTL expiry), so no crash
between the two can lose it, and it runs once however often that step is retried.

Claim side: ``prepare`` reads the dependencies of claimed ``run_if``/``pass_results``
tasks in one batch (statuses, and results when values are passed), ends those whose
condition does not hold as cancelled without running, and puts the dependencies'
values first in the others' arguments.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import msgspec

from omniq.models import (
    ClaimedTask,
    ErrorInfo,
    Task,
    TaskCancelledError,
    TaskResult,
    TaskStatus,
)
from omniq.serialization import SerializationManager
from omniq.storage import ResultStorage, TaskQueueStorage

__all__ = [
    "CALLBACK_OF_KEY",
    "WorkflowStores",
    "expand",
    "prepare",
    "result_mapping",
    "skipped_error",
]

CALLBACK_OF_KEY = "group_callback_of"
"""Metadata key marking a group's callback (value: the group id): it gets its
dependencies' values as a list even when the group has a single member."""


class WorkflowStores(Protocol):
    """What ``prepare`` reads: the stores and the serializer of ``AsyncTaskQueue``."""

    tasks: TaskQueueStorage
    results: ResultStorage | None
    serializer: SerializationManager

    def decode(self, result: TaskResult) -> TaskResult: ...


def _follow_up(parent: Task, f: Task, run_if: str) -> Task:
    """``f`` stored now, waiting on ``parent``: no TTL while it waits (its task may take
    any time), its own follow-ups expanded in turn by the caller. An ``on_failure``
    follow-up always receives ``parent``'s result first (``pass_results``)."""
    deps = (parent.id, *(d for d in f.depends_on if d != parent.id))
    return msgspec.structs.replace(
        f,
        depends_on=deps,
        run_if=run_if,
        expires_at=None,
        pass_results=f.pass_results or run_if == "failed",
    )


def expand(batch: Sequence[Task]) -> tuple[list[Task], dict[str, str]]:
    """The batch with every follow-up (transitively) as a stored conditional dependent,
    parents first; the parents keep no nested follow-ups. Also returns each follow-up's
    parent id (to cancel the follow-ups of a parent that an idempotency key replaced)."""
    if not any(t.on_success or t.on_failure for t in batch):
        return list(batch), {}
    out: list[Task] = []
    parent_of: dict[str, str] = {}
    todo = list(batch)
    while todo:
        t = todo.pop(0)
        if not (t.on_success or t.on_failure):
            out.append(t)
            continue
        out.append(msgspec.structs.replace(t, on_success=(), on_failure=()))
        for f in t.on_success:
            parent_of[f.id] = t.id
            todo.append(_follow_up(t, f, "succeeded"))
        for f in t.on_failure:
            parent_of[f.id] = t.id
            todo.append(_follow_up(t, f, "failed"))
    return out, parent_of


def skipped_error(task: Task) -> ErrorInfo:
    """Why a conditional task ended cancelled without running."""
    want = {"succeeded": "all succeeded", "failed": "one failed"}.get(task.run_if or "", "")
    return ErrorInfo.from_exception(
        TaskCancelledError(f"skipped: its dependencies ended but not as it runs on ({want})")
    )


_FAILED = frozenset({TaskStatus.ERROR, TaskStatus.CANCELLED, TaskStatus.EXPIRED})


def _holds(run_if: str | None, statuses: Sequence[TaskStatus | None]) -> bool:
    if run_if == "succeeded":
        return all(s is TaskStatus.SUCCESS for s in statuses)
    if run_if == "failed":
        return any(
            s is not None and s.is_terminal and s is not TaskStatus.SUCCESS for s in statuses
        )
    return True


def result_mapping(result: TaskResult | None, task_id: str, status: TaskStatus | None) -> Any:
    """A dependency's result as passed to a ``run_if`` ``failed``/``finished`` task: its
    fields as plain data (so every serializer carries it), the value decoded."""
    if result is None:  # purged, or not written (yet)
        return {
            "task_id": task_id,
            "status": status.value if status else None,
            "value": None,
            "error": None,
            "attempts": None,
            "finished_at": None,
        }
    return {
        "task_id": result.task_id,
        "status": result.status.value,
        "value": result.value,
        "error": msgspec.to_builtins(result.error) if result.error is not None else None,
        "attempts": result.attempts,
        "finished_at": result.finished_at,
    }


async def prepare(
    q: WorkflowStores, claims: Sequence[ClaimedTask]
) -> tuple[list[ClaimedTask], list[ClaimedTask]]:
    """Split claims into (to run, to end as skipped); the ones to run that pass results
    carry their dependencies' values first in their arguments. One read of the
    dependencies' tasks and, when values are passed, one of their results."""
    wanted = [c for c in claims if c.task.depends_on and (c.task.run_if or c.task.pass_results)]
    if not wanted:
        return list(claims), []
    dep_ids = list(dict.fromkeys(d for c in wanted for d in c.task.depends_on))
    tasks = await q.tasks.get(dep_ids)
    status = {i: (t.status if t is not None else None) for i, t in zip(dep_ids, tasks, strict=True)}
    results: dict[str, TaskResult | None] = {}
    if q.results is not None and any(c.task.pass_results for c in wanted):
        need = list(
            dict.fromkeys(d for c in wanted if c.task.pass_results for d in c.task.depends_on)
        )
        got = await q.results.get(need)
        results = {
            i: (q.decode(r) if r is not None else None) for i, r in zip(need, got, strict=True)
        }
    picked = {c.task.id for c in wanted}
    run: list[ClaimedTask] = []
    skip: list[ClaimedTask] = []
    for c in claims:
        t = c.task
        if t.id not in picked:
            run.append(c)
            continue
        if not _holds(t.run_if, [status.get(d) for d in t.depends_on]):
            skip.append(c)
            continue
        if t.pass_results:
            run.append(msgspec.structs.replace(c, task=_with_values(q, t, status, results)))
        else:
            run.append(c)
    return run, skip


def _with_values(
    q: WorkflowStores,
    t: Task,
    status: dict[str, TaskStatus | None],
    results: dict[str, TaskResult | None],
) -> Task:
    if t.run_if in ("failed", "finished"):
        values = [result_mapping(results.get(d), d, status.get(d)) for d in t.depends_on]
    else:
        values = [(r.value if (r := results.get(d)) is not None else None) for d in t.depends_on]
    as_list = len(values) > 1 or CALLBACK_OF_KEY in t.metadata
    first: Any = values if as_list else values[0]
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = {}
    if t.payload is not None:
        args, kwargs = q.serializer.loads_call(t.payload)
    payload = q.serializer.dumps_call((first, *args), kwargs)
    return msgspec.structs.replace(t, payload=payload)
