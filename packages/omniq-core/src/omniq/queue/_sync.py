"""TaskQueue: the blocking twin of AsyncTaskQueue, with the same method names."""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any

from omniq.config import Settings, get_settings
from omniq.events.bridge import ThreadPortal, loop_factory
from omniq.models import ConfigError, Progress, Task, TaskResult, TaskStatus
from omniq.storage import Backend, open_storage

from ._build import TaskSpec
from ._queue import AsyncTaskQueue

__all__ = ["TaskQueue"]


class TaskQueue:
    """Blocking task queue over the backends at ``url`` (and ``result_url``).

    The backends are opened on a private event loop in a helper thread; every method
    blocks until the async core is done. Use as a context manager or call ``close()``.
    """

    def __init__(
        self,
        url: str = "memory://",
        result_url: str | None = None,
        *,
        settings: Settings | None = None,
    ) -> None:
        self._runner = ThreadPortal(
            loop_factory((settings or get_settings()).event_loop), warn=True
        )
        self._backends: list[Backend] = []
        self._async: AsyncTaskQueue = self._runner.call(self._open, url, result_url, settings)

    async def _open(
        self, url: str, result_url: str | None, settings: Settings | None
    ) -> AsyncTaskQueue:
        backend = open_storage(url)
        await backend.connect()
        self._backends.append(backend)
        if backend.tasks is None:
            raise ConfigError("url", url, "a backend that can hold a task queue")
        results_backend = backend
        if result_url and result_url != url:
            results_backend = open_storage(result_url)
            await results_backend.connect()
            self._backends.append(results_backend)
        return AsyncTaskQueue(backend.tasks, results_backend.results, settings=settings)

    @property
    def async_queue(self) -> AsyncTaskQueue:
        """The async core (use it only on this queue's loop)."""
        return self._async

    def enqueue(
        self,
        func: TaskSpec | Task,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> Task:
        return self._runner.call(lambda: self._async.enqueue(func, args, kwargs, **options))

    def enqueue_many(
        self, tasks: Iterable[Task], *, validated: bool = False, connection: object | None = None
    ) -> list[Task]:
        return self._runner.call(
            functools.partial(self._async.enqueue_many, validated=validated, connection=connection),
            list(tasks),
        )

    def build(
        self,
        func: TaskSpec,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> Task:
        return self._async.build(func, args, kwargs, **options)

    def get_result(
        self, task_id: str, *, wait: bool = False, timeout: float | None = None
    ) -> TaskResult | None:
        return self._runner.call(
            lambda: self._async.get_result(task_id, wait=wait, timeout=timeout)
        )

    def get_results(self, task_ids: Sequence[str]) -> list[TaskResult | None]:
        return self._runner.call(self._async.get_results, task_ids)

    def get_task(self, task_id: str) -> Task | None:
        return self._runner.call(self._async.get_task, task_id)

    def counts(self) -> dict[tuple[str, TaskStatus], int]:
        return self._runner.call(self._async.counts)

    def get_progress(self, task_ids: Sequence[str]) -> list[Progress | None]:
        """The last progress each task recorded (None where there is none)."""
        return self._runner.call(self._async.get_progress, task_ids)

    def list_tasks(
        self,
        *,
        queue: str | None = None,
        status: TaskStatus | str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[Task]:
        return self._runner.call(
            lambda: self._async.list_tasks(queue=queue, status=status, limit=limit, offset=offset)
        )

    def cancel(self, task_id: str | Sequence[str]) -> list[str]:
        return self._runner.call(self._async.cancel, task_id)

    def close(self) -> None:
        """Close the backends and stop the helper loop."""
        if self._runner.started:

            async def _close() -> None:
                for b in self._backends:
                    await b.close()

            self._runner.call(_close)
        self._runner.close(cancel_remaining=True)

    def __enter__(self) -> TaskQueue:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
