"""Task outcomes as stored and as returned to users."""

from __future__ import annotations

from typing import Any

import msgspec

from ._enums import TaskStatus
from ._task import Payload

__all__ = ["ErrorInfo", "TaskResult"]


class ErrorInfo(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Why a task failed: the exception's type, its message and the traceback text."""

    type: str
    message: str
    traceback: str | None = None

    @classmethod
    def from_exception(cls, exc: BaseException, traceback: str | None = None) -> ErrorInfo:
        """Describe ``exc``; its type is given with its module unless it is a builtin."""
        t = type(exc)
        name = t.__qualname__ if t.__module__ == "builtins" else f"{t.__module__}.{t.__qualname__}"
        return cls(type=name, message=str(exc), traceback=traceback)


class TaskResult(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """The outcome of a task.

    Stores keep the serialized return value in ``payload``; ``OmniQ.get_result`` returns
    the result with ``value`` set to the decoded return value. ``error`` is set for the
    ``error``, ``expired`` and ``cancelled`` statuses.
    """

    task_id: str
    status: TaskStatus
    value: Any = None
    payload: Payload | None = None
    error: ErrorInfo | None = None
    attempts: int = 0
    started_at: float | None = None
    finished_at: float | None = None
    worker_id: str | None = None
    expires_at: float | None = None
    """When the store may forget this result (RESULT_TTL); None keeps it."""
    queue: str | None = None

    @property
    def ok(self) -> bool:
        """True if the task succeeded."""
        return self.status is TaskStatus.SUCCESS

    @property
    def duration(self) -> float | None:
        """Seconds between start and finish, when both are known."""
        if self.started_at is None or self.finished_at is None:
            return None
        return self.finished_at - self.started_at


__all__ += ["Progress"]


class Progress(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """How far a running task got, as it last reported (``current_task().set_progress``).

    ``done`` and ``total`` are in the task's own units (items, bytes, percent);
    ``total`` is None when unknown. ``updated_at`` is when the worker recorded it.
    """

    done: float
    total: float | None = None
    message: str | None = None
    updated_at: float = 0.0

    @property
    def fraction(self) -> float | None:
        """``done / total`` when a positive total is known, else None."""
        if self.total is None or self.total <= 0:
            return None
        return self.done / self.total
