"""What an operator sees of one queue: whether it is paused and its tasks by status."""

from __future__ import annotations

import msgspec

from ._enums import TaskStatus

__all__ = ["QueueInfo"]


class QueueInfo(msgspec.Struct, frozen=True):
    """One queue: ``paused`` (claims lease none of its tasks until it is resumed) and
    ``counts``, its stored tasks by status (every status present, zero included).

    A queue is listed when it holds tasks or is paused.
    """

    name: str
    paused: bool = False
    counts: dict[TaskStatus, int] = msgspec.field(default_factory=dict)

    def count(self, status: TaskStatus | str) -> int:
        """How many of the queue's tasks are in ``status``."""
        return self.counts.get(TaskStatus(status), 0)

    @property
    def total(self) -> int:
        """How many tasks the queue holds, in any status."""
        return sum(self.counts.values())
