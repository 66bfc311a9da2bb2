"""Enumerations shared by every OmniQ distribution."""

from __future__ import annotations

import enum

__all__ = [
    "TERMINAL_STATUSES",
    "EventType",
    "MisfirePolicy",
    "ScheduleKind",
    "ScheduleState",
    "TaskStatus",
    "WorkerType",
]


class TaskStatus(enum.StrEnum):
    """Where a task is in its life. ``cancelled`` and ``expired`` are terminal like the
    outcomes ``success`` and ``error``; a task waiting on dependencies is ``pending``."""

    PENDING = "pending"
    RUNNING = "running"
    SUCCESS = "success"
    ERROR = "error"
    CANCELLED = "cancelled"
    EXPIRED = "expired"

    @property
    def is_terminal(self) -> bool:
        """True once the task will never run again."""
        return self in TERMINAL_STATUSES


TERMINAL_STATUSES = frozenset(
    {TaskStatus.SUCCESS, TaskStatus.ERROR, TaskStatus.CANCELLED, TaskStatus.EXPIRED}
)


class EventType(enum.StrEnum):
    """The lifecycle events recorded in the event log."""

    ENQUEUED = "ENQUEUED"
    EXECUTING = "EXECUTING"
    COMPLETE = "COMPLETE"
    ERROR = "ERROR"
    RETRY = "RETRY"
    CANCELLED = "CANCELLED"
    EXPIRED = "EXPIRED"
    SCHEDULE_PAUSED = "SCHEDULE_PAUSED"
    SCHEDULE_RESUMED = "SCHEDULE_RESUMED"
    QUEUE_PAUSED = "QUEUE_PAUSED"
    QUEUE_RESUMED = "QUEUE_RESUMED"
    PROGRESS = "PROGRESS"
    LIMITED = "LIMITED"
    """A ready task was held back by its rate limit or concurrency cap (at most one
    event per limit key per second)."""


class WorkerType(enum.StrEnum):
    """Which executor runs a task."""

    ASYNC = "async"
    THREAD = "thread"
    PROCESS = "process"
    GEVENT = "gevent"


class ScheduleKind(enum.StrEnum):
    """How a schedule computes its runs."""

    CRON = "cron"
    INTERVAL = "interval"
    AT = "at"


class ScheduleState(enum.StrEnum):
    """A paused schedule keeps its definition but does not fire."""

    ACTIVE = "active"
    PAUSED = "paused"


class MisfirePolicy(enum.StrEnum):
    """What to do with runs that fell due while no scheduler was running (or paused).

    ``run_once``: missed runs collapse into one run, fired as soon as possible.
    ``skip``: a run later than the schedule's grace period is skipped; the next regular
    run fires on time.
    """

    RUN_ONCE = "run_once"
    SKIP = "skip"
