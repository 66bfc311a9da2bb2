"""Read-only views of the stores for dashboards (async + ``_sync``): keyset pages of
tasks, a task's stored result without decoding its value, and event-log queries.

Nothing here decodes a payload: a dashboard shows data from the store and must never
unpickle what a producer wrote.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from omniq.models import EventType, Task, TaskEvent, TaskResult, TaskStatus, validate_task_id

from ._session import Session

__all__ = ["BrowseOps"]

T = TypeVar("T")


class BrowseOps:
    """Keyset task pages, stored results and event queries."""

    if TYPE_CHECKING:

        async def _call(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T: ...

        def _call_sync(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T: ...

    async def task_page(
        self,
        *,
        queue: str | None = None,
        status: TaskStatus | str | None = None,
        after: str | None = None,
        before: str | None = None,
        limit: int = 50,
    ) -> list[Task]:
        """The newest ``limit`` tasks with ``after < id < before``, newest first; the next
        page passes the last id shown as ``before``. Costs the same on every page."""
        st = TaskStatus(status) if status is not None else None
        return await self._call(_page, queue, st, after, before, limit)

    def task_page_sync(
        self,
        *,
        queue: str | None = None,
        status: TaskStatus | str | None = None,
        after: str | None = None,
        before: str | None = None,
        limit: int = 50,
    ) -> list[Task]:
        st = TaskStatus(status) if status is not None else None
        return self._call_sync(_page, queue, st, after, before, limit)

    async def stored_result(self, task_id: str) -> TaskResult | None:
        """The task's result as stored: ``payload`` still serialized, ``value`` unset."""
        return await self._call(_stored_result, validate_task_id(task_id))

    def stored_result_sync(self, task_id: str) -> TaskResult | None:
        return self._call_sync(_stored_result, validate_task_id(task_id))

    async def query_events(
        self,
        *,
        task_id: str | None = None,
        types: Sequence[EventType] | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int | None = None,
    ) -> list[TaskEvent]:
        """Events matching every filter, oldest first (empty when events are off)."""
        return await self._call(_query, task_id, types, since, until, limit)

    def query_events_sync(
        self,
        *,
        task_id: str | None = None,
        types: Sequence[EventType] | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int | None = None,
    ) -> list[TaskEvent]:
        return self._call_sync(_query, task_id, types, since, until, limit)

    async def events_enabled(self) -> bool:
        """True when an event store is configured (the event queries can answer)."""
        return await self._call(_events_on)

    def events_enabled_sync(self) -> bool:
        return self._call_sync(_events_on)


async def _page(  # noqa: PLR0917
    session: Session,
    queue: str | None,
    status: TaskStatus | None,
    after: str | None,
    before: str | None,
    limit: int,
) -> list[Task]:
    tasks = session.queue.tasks
    return await tasks.list_page(
        queue=queue, status=status, after=after, before=before, limit=limit
    )


async def _stored_result(session: Session, task_id: str) -> TaskResult | None:
    results = session.queue.results
    return None if results is None else await results.get_one(task_id)


async def _query(  # noqa: PLR0917
    session: Session,
    task_id: str | None,
    types: Sequence[EventType] | None,
    since: float | None,
    until: float | None,
    limit: int | None,
) -> list[TaskEvent]:
    logger = session.logger
    if logger is None or logger.storage is None:
        return []
    await logger.flush()
    return await logger.storage.query(
        task_id=task_id, types=types, since=since, until=until, limit=limit
    )


async def _events_on(session: Session) -> bool:
    logger = session.logger
    return logger is not None and logger.storage is not None
