"""Builders for the lifecycle events with their structured metadata.

Metadata is plain JSON-compatible data (str, int, float, bool, None, lists, dicts) so
every store keeps it as columns/JSON. Keys used across OmniQ: ``func``, ``attempt``,
``duration``, ``error_type``, ``error_message``, ``eta``, ``delay``, ``reason``,
``expires_at``, ``schedule_id``, ``next_run_at``, ``priority``, ``depends_on``.
"""

from __future__ import annotations

from typing import Any

from omniq.models import ErrorInfo, EventType, Progress, Schedule, Task, TaskEvent, TaskResult

from ._ids import event_id

__all__ = [
    "TaskRef",
    "cancelled_event",
    "complete_event",
    "enqueued_event",
    "error_event",
    "executing_event",
    "expired_event",
    "queue_paused_event",
    "queue_resumed_event",
    "retry_event",
    "schedule_paused_event",
    "schedule_resumed_event",
]

TaskRef = Task | str
"""A task, or just its id when the task itself is not at hand."""


def _base(task: TaskRef, meta: dict[str, Any]) -> tuple[str, str | None]:
    if isinstance(task, Task):
        meta["func"] = task.func
        return task.id, task.queue
    return task, None


def _put(meta: dict[str, Any], **values: Any) -> dict[str, Any]:
    for key, value in values.items():
        if value is not None:
            meta[key] = value
    return meta


def _error_fields(error: BaseException | ErrorInfo | str | None) -> dict[str, Any]:
    if error is None:
        return {}
    if isinstance(error, str):
        return {"error_message": error}
    info = error if isinstance(error, ErrorInfo) else ErrorInfo.from_exception(error)
    return {"error_type": info.type, "error_message": info.message}


def enqueued_event(task: TaskRef, **extra: Any) -> TaskEvent:
    """ENQUEUED: the task was stored and waits to run."""
    meta: dict[str, Any] = {}
    task_id, queue = _base(task, meta)
    if isinstance(task, Task):
        _put(
            meta,
            priority=task.priority or None,
            eta=task.eta,
            expires_at=task.expires_at,
            depends_on=list(task.depends_on) or None,
        )
    meta.update(extra)
    return TaskEvent(
        id=event_id(), task_id=task_id, type=EventType.ENQUEUED, queue=queue, metadata=meta
    )


def executing_event(
    task: TaskRef, worker_id: str | None = None, attempt: int | None = None, **extra: Any
) -> TaskEvent:
    """EXECUTING: a worker started an attempt (``attempt`` defaults to the task's)."""
    meta: dict[str, Any] = {}
    task_id, queue = _base(task, meta)
    if attempt is None and isinstance(task, Task):
        attempt = task.attempt
    _put(meta, attempt=attempt)
    meta.update(extra)
    return TaskEvent(
        id=event_id(),
        task_id=task_id,
        type=EventType.EXECUTING,
        worker_id=worker_id,
        queue=queue,
        metadata=meta,
    )


def complete_event(
    task: TaskRef | TaskResult,
    worker_id: str | None = None,
    attempt: int | None = None,
    duration: float | None = None,
    **extra: Any,
) -> TaskEvent:
    """COMPLETE: the task succeeded (``duration`` in seconds)."""
    meta: dict[str, Any] = {}
    if isinstance(task, TaskResult):
        task_id, queue = task.task_id, task.queue
        worker_id = worker_id or task.worker_id
        attempt = attempt if attempt is not None else (task.attempts or None)
        duration = duration if duration is not None else task.duration
    else:
        task_id, queue = _base(task, meta)
        if attempt is None and isinstance(task, Task):
            attempt = task.attempt or None
    _put(meta, attempt=attempt, duration=duration)
    meta.update(extra)
    return TaskEvent(
        id=event_id(),
        task_id=task_id,
        type=EventType.COMPLETE,
        worker_id=worker_id,
        queue=queue,
        metadata=meta,
    )


def error_event(
    task: TaskRef,
    error: BaseException | ErrorInfo | str | None = None,
    worker_id: str | None = None,
    attempt: int | None = None,
    duration: float | None = None,
    **extra: Any,
) -> TaskEvent:
    """ERROR: an attempt failed for good (no retry left); carries the error type/message."""
    meta: dict[str, Any] = {}
    task_id, queue = _base(task, meta)
    if attempt is None and isinstance(task, Task):
        attempt = task.attempt or None
    _put(meta, attempt=attempt, duration=duration)
    meta.update(_error_fields(error))
    meta.update(extra)
    return TaskEvent(
        id=event_id(),
        task_id=task_id,
        type=EventType.ERROR,
        worker_id=worker_id,
        queue=queue,
        metadata=meta,
    )


def retry_event(
    task: TaskRef,
    error: BaseException | ErrorInfo | str | None = None,
    eta: float | None = None,
    attempt: int | None = None,
    *,
    delay: float | None = None,
    worker_id: str | None = None,
    **extra: Any,
) -> TaskEvent:
    """RETRY: an attempt failed and the task will run again not before ``eta``."""
    meta: dict[str, Any] = {}
    task_id, queue = _base(task, meta)
    if attempt is None and isinstance(task, Task):
        attempt = task.attempt or None
    _put(meta, attempt=attempt, eta=eta, delay=delay)
    meta.update(_error_fields(error))
    meta.update(extra)
    return TaskEvent(
        id=event_id(),
        task_id=task_id,
        type=EventType.RETRY,
        worker_id=worker_id,
        queue=queue,
        metadata=meta,
    )


def cancelled_event(task: TaskRef, reason: str | None = None, **extra: Any) -> TaskEvent:
    """CANCELLED: the task was cancelled (by a user, or by a failed dependency)."""
    meta: dict[str, Any] = {}
    task_id, queue = _base(task, meta)
    _put(meta, reason=reason)
    meta.update(extra)
    return TaskEvent(
        id=event_id(), task_id=task_id, type=EventType.CANCELLED, queue=queue, metadata=meta
    )


def expired_event(task: TaskRef, **extra: Any) -> TaskEvent:
    """EXPIRED: the task reached its TTL before it started and will never run."""
    meta: dict[str, Any] = {}
    task_id, queue = _base(task, meta)
    if isinstance(task, Task):
        _put(meta, expires_at=task.expires_at)
    meta.update(extra)
    return TaskEvent(
        id=event_id(), task_id=task_id, type=EventType.EXPIRED, queue=queue, metadata=meta
    )


def _schedule_event(schedule: Schedule | str, kind: EventType, extra: dict[str, Any]) -> TaskEvent:
    meta: dict[str, Any] = {}
    if isinstance(schedule, Schedule):
        sid = schedule.id
        _put(
            meta,
            schedule_id=sid,
            name=schedule.name,
            kind=schedule.kind.value,
            func=schedule.task.func,
            next_run_at=schedule.next_run_at,
        )
        queue: str | None = schedule.task.queue
    else:
        sid, queue = schedule, None
        meta["schedule_id"] = sid
    meta.update(extra)
    return TaskEvent(id=event_id(), task_id=sid, type=kind, queue=queue, metadata=meta)


def schedule_paused_event(schedule: Schedule | str, **extra: Any) -> TaskEvent:
    """SCHEDULE_PAUSED: a schedule stopped firing (``task_id`` is the schedule id)."""
    return _schedule_event(schedule, EventType.SCHEDULE_PAUSED, extra)


def schedule_resumed_event(schedule: Schedule | str, **extra: Any) -> TaskEvent:
    """SCHEDULE_RESUMED: a paused schedule fires again (``task_id`` is the schedule id)."""
    return _schedule_event(schedule, EventType.SCHEDULE_RESUMED, extra)


def _queue_event(queue: str, kind: EventType, extra: dict[str, Any]) -> TaskEvent:
    meta: dict[str, Any] = {"queue": queue}
    meta.update(extra)
    return TaskEvent(id=event_id(), task_id=queue, type=kind, queue=queue, metadata=meta)


def queue_paused_event(queue: str, **extra: Any) -> TaskEvent:
    """QUEUE_PAUSED: no task of the queue starts until it is resumed (``task_id`` is the
    queue name)."""
    return _queue_event(queue, EventType.QUEUE_PAUSED, extra)


def queue_resumed_event(queue: str, **extra: Any) -> TaskEvent:
    """QUEUE_RESUMED: the queue's tasks start again (``task_id`` is the queue name)."""
    return _queue_event(queue, EventType.QUEUE_RESUMED, extra)


__all__ += ["progress_event"]


def progress_event(
    task: TaskRef, progress: Progress, *, worker_id: str | None = None, **extra: Any
) -> TaskEvent:
    """PROGRESS: a running task reported how far it got (at most about once a second)."""
    meta: dict[str, Any] = {}
    task_id, queue = _base(task, meta)
    _put(meta, done=progress.done, total=progress.total, message=progress.message)
    meta.update(extra)
    return TaskEvent(
        id=event_id(),
        task_id=task_id,
        type=EventType.PROGRESS,
        worker_id=worker_id,
        queue=queue,
        metadata=meta,
    )
