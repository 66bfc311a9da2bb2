"""Task-context operations of the ``OmniQ`` facade (async + ``_sync``): progress.

Inside a task, ``omniq.current_task()`` (defined in ``omniq.workers``, re-exported by
``omniq.core`` and ``omniq``) gives the running task's id, attempt, queue, worker and
``cancelled`` flag, and ``set_progress``; from outside, ``get_progress`` reads what a
task last reported. Cancelling a running task is ``OmniQ.cancel``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from omniq.models import Progress, Task

from ._session import Session

__all__ = ["TaskControlOps"]

T = TypeVar("T")


class TaskControlOps:
    """Read the progress running tasks report."""

    if TYPE_CHECKING:

        async def _call(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T: ...

        def _call_sync(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T: ...

    async def get_progress(self, task_id: str | Task) -> Progress | None:
        """The progress the task last recorded with ``current_task().set_progress``
        (written about once a second while it runs), or None if it recorded none."""
        tid = task_id.id if isinstance(task_id, Task) else task_id
        return await self._call(_get_progress, tid)

    def get_progress_sync(self, task_id: str | Task) -> Progress | None:
        tid = task_id.id if isinstance(task_id, Task) else task_id
        return self._call_sync(_get_progress, tid)


async def _get_progress(session: Session, tid: str) -> Progress | None:
    return (await session.queue.get_progress([tid]))[0]
