"""Lifecycle events, stored as plain data (columns, JSON), never pickled."""

from __future__ import annotations

from typing import Any

import msgspec

from ._enums import EventType
from ._ids import new_id
from ._time import now

__all__ = ["TaskEvent"]


class TaskEvent(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Something that happened to a task or schedule.

    ``metadata`` holds JSON-compatible detail: worker, attempt, duration, error type and
    message, schedule id, and so on. ``task_id`` is the schedule's id for schedule events.
    """

    task_id: str
    type: EventType
    id: str = msgspec.field(default_factory=new_id)
    timestamp: float = msgspec.field(default_factory=now)
    worker_id: str | None = None
    queue: str | None = None
    metadata: dict[str, Any] = msgspec.field(default_factory=dict)
