"""Worker registry operations of the ``OmniQ`` facade (async + ``_sync``).

Every worker process registers itself in the task queue's engine when it starts and
refreshes its entry with its lease renewals; ``list_workers`` shows the live ones.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from omniq.models import WorkerInfo, now

from ._session import Session

__all__ = ["WorkerOps"]

T = TypeVar("T")


class WorkerOps:
    """List the worker processes serving this OmniQ's task queue."""

    if TYPE_CHECKING:

        async def _call(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T: ...

        def _call_sync(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T: ...

    async def list_workers(self) -> list[WorkerInfo]:
        """The live workers on every host, ordered by id, each with the ids of the tasks
        it was running at its last refresh (``WorkerInfo.running``). A worker whose
        process died drops out within one lease; entries left by dead workers are
        deleted on the way. Empty when the task queue's engine keeps no registry."""
        return await self._call(_list_workers)

    def list_workers_sync(self) -> list[WorkerInfo]:
        return self._call_sync(_list_workers)


async def _list_workers(session: Session) -> list[WorkerInfo]:
    registry = session.task_backend.workers
    if registry is None:
        return []
    t = now()
    await registry.purge_expired(now=t)
    return await registry.list(now=t)
