"""Queue pause/resume and the queue listing of the ``OmniQ`` facade (async + ``_sync``).

A paused queue keeps accepting tasks but none of them starts, on any worker of any
host, until it is resumed; tasks already running finish. The task store enforces it
inside its claim (``TaskQueueStorage.pause_queue``), so workers need no restart and no
configuration change. Pausing and resuming log QUEUE_PAUSED / QUEUE_RESUMED events.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from omniq.events import queue_paused_event, queue_resumed_event
from omniq.models import QueueInfo, validate_queue_name

from ._session import Session

__all__ = ["QueueOps"]

T = TypeVar("T")


class QueueOps:
    """Pause, resume and list queues."""

    if TYPE_CHECKING:

        async def _call(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T: ...

        def _call_sync(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T: ...

    async def pause_queue(self, queue: str) -> bool:
        """Pause ``queue``: once this returns, no task of it starts on any worker until
        ``resume_queue`` (tasks already running finish; enqueue still works). Persistent
        and idempotent; True if the queue was not paused (then QUEUE_PAUSED is logged)."""
        return await self._call(_pause, validate_queue_name(queue))

    def pause_queue_sync(self, queue: str) -> bool:
        return self._call_sync(_pause, validate_queue_name(queue))

    async def resume_queue(self, queue: str) -> bool:
        """Let ``queue``'s tasks start again, waking the workers waiting on it. True if it
        was paused (then QUEUE_RESUMED is logged)."""
        return await self._call(_resume, validate_queue_name(queue))

    def resume_queue_sync(self, queue: str) -> bool:
        return self._call_sync(_resume, validate_queue_name(queue))

    async def list_queues(self) -> list[QueueInfo]:
        """Every queue holding tasks or paused, by name: paused or not, and its task
        counts by status."""
        return await self._call(_list)

    def list_queues_sync(self) -> list[QueueInfo]:
        return self._call_sync(_list)


async def _pause(session: Session, queue: str) -> bool:
    q = session.queue
    changed = await q.tasks.pause_queue(queue)
    if changed:
        q._log([queue_paused_event(queue)])
    return changed


async def _resume(session: Session, queue: str) -> bool:
    q = session.queue
    changed = await q.tasks.resume_queue(queue)
    if changed:
        q._log([queue_resumed_event(queue)])
    return changed


async def _list(session: Session) -> list[QueueInfo]:
    return await session.queue.tasks.list_queues()
