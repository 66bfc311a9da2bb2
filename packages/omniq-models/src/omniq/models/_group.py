"""Handles of task groups (``OmniQ.enqueue_group``) and their progress."""

from __future__ import annotations

import msgspec

from ._task import Task

__all__ = ["Group", "GroupStatus"]


class Group(msgspec.Struct, frozen=True, kw_only=True):
    """A group of tasks stored together, with its optional callback.

    ``id`` names the group for ``OmniQ.get_group`` (it is the first member's id);
    ``tasks`` are the members as stored, in order; ``callback`` is the ``then`` task,
    which depends on every member and receives their values as a list in member order.
    """

    id: str
    tasks: tuple[Task, ...]
    callback: Task | None = None

    @property
    def task_ids(self) -> tuple[str, ...]:
        """The members' ids, in member order."""
        return tuple(t.id for t in self.tasks)


class GroupStatus(msgspec.Struct, frozen=True, kw_only=True):
    """Where a group's members are: ``counts`` maps a status value (``"success"``,
    ``"pending"``...) to how many members are in it (statuses with no member are left
    out); ``finished`` is True once every member is terminal. ``callback_id`` is the
    ``then`` task's id, if the group has one."""

    id: str
    total: int
    counts: dict[str, int]
    finished: bool
    callback_id: str | None = None
