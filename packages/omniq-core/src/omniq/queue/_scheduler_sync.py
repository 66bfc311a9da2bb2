"""Scheduler: the blocking twin of AsyncScheduler, with the same method names."""

from __future__ import annotations

import asyncio
import builtins
import threading
from collections.abc import Sequence
from types import TracebackType
from typing import Any

from omniq.config import Settings, get_settings
from omniq.events import AsyncEventLogger
from omniq.events.bridge import ThreadPortal, loop_factory, stop_on_signals
from omniq.models import ConfigError, Schedule, ScheduleState
from omniq.storage import Backend, open_storage

from ._build import TaskSpec
from ._queue import AsyncTaskQueue
from ._scheduler import AsyncScheduler, Clock, SchedulerStats, TickReport

__all__ = ["Scheduler"]


class Scheduler:
    """Blocking scheduler over the engine at ``url`` (schedules and tasks in one store).

    The store is opened on a private event loop in a helper thread. ``run()`` blocks
    until ``stop()`` is called from another thread (or, from the main thread, SIGTERM/
    SIGINT). ``events_url`` turns on SCHEDULE_PAUSED/RESUMED and ENQUEUED events.
    ``options`` go to AsyncScheduler (``max_sleep``, ``misfire_policy``, ...).
    """

    def __init__(
        self,
        url: str = "memory://",
        *,
        events_url: str | None = None,
        settings: Settings | None = None,
        clock: Clock | None = None,
        **options: Any,
    ) -> None:
        self._runner = ThreadPortal(
            loop_factory((settings or get_settings()).event_loop), warn=True
        )
        self._backends: list[Backend] = []
        self._logger: AsyncEventLogger | None = None
        self._logger_task: asyncio.Task[None] | None = None
        self._stop_logger = asyncio.Event()
        self._async: AsyncScheduler = self._runner.call(
            self._open, url, events_url, settings, clock, options
        )

    async def _open(
        self,
        url: str,
        events_url: str | None,
        settings: Settings | None,
        clock: Clock | None,
        options: dict[str, Any],
    ) -> AsyncScheduler:
        backend = open_storage(url)
        await backend.connect()
        self._backends.append(backend)
        if backend.tasks is None or backend.schedules is None:
            raise ConfigError("url", url, "a backend that can hold both tasks and schedules")
        if events_url is not None:
            eb = backend if events_url == url else open_storage(events_url)
            if eb is not backend:
                await eb.connect()
                self._backends.append(eb)
            if eb.events is None:
                raise ConfigError("events_url", events_url, "a backend that can hold events")
            self._logger = AsyncEventLogger(eb.events)
            await self._host_logger(self._logger)
        queue = AsyncTaskQueue(backend.tasks, backend.results, self._logger, settings=settings)
        return AsyncScheduler(queue, backend.schedules, clock=clock, **options)

    async def _host_logger(self, logger: AsyncEventLogger) -> None:
        """The logger's task group must be entered and exited by one task; portal calls
        each run in their own, so a long-lived task owns it."""
        started, self._stop_logger = asyncio.Event(), asyncio.Event()
        stop = self._stop_logger

        async def host() -> None:
            async with logger:
                started.set()
                await stop.wait()

        self._logger_task = asyncio.get_running_loop().create_task(host())
        await started.wait()

    @property
    def async_scheduler(self) -> AsyncScheduler:
        """The async core (use it only on this scheduler's loop)."""
        return self._async

    def schedule(self, func: TaskSpec, **options: Any) -> Schedule:
        return self._runner.call(lambda: self._async.schedule(func, **options))

    def add(self, schedules: Sequence[Schedule]) -> None:
        self._runner.call(self._async.add, list(schedules))

    def get(self, schedule_id: str) -> Schedule | None:
        return self._runner.call(self._async.get, schedule_id)

    def list(self, *, state: ScheduleState | str | None = None) -> builtins.list[Schedule]:
        return self._runner.call(lambda: self._async.list(state=state))

    def delete(self, schedule_id: str) -> bool:
        return self._runner.call(self._async.delete, schedule_id)

    def pause(self, schedule_id: str) -> Schedule | None:
        return self._runner.call(self._async.pause, schedule_id)

    def resume(self, schedule_id: str) -> Schedule | None:
        return self._runner.call(self._async.resume, schedule_id)

    def tick(self, now: float | None = None) -> TickReport:
        return self._runner.call(self._async.tick, now)

    def run(self, *, handle_signals: bool = True) -> SchedulerStats:
        """Fire due runs until ``stop()``; from the main thread SIGTERM/SIGINT stop it."""
        restore = None
        if handle_signals and threading.current_thread() is threading.main_thread():
            restore = stop_on_signals(self.stop)
        try:
            return self._runner.call(self._async.run)
        finally:
            if restore is not None:
                restore()

    def stop(self) -> None:
        """Make ``run()`` return (callable from any thread but the loop's)."""

        async def _stop() -> None:
            self._async.stop()

        self._runner.call(_stop)

    def close(self) -> None:
        """Flush events, close the stores and stop the helper loop."""
        if self._runner.started:

            async def _close() -> None:
                if self._logger_task is not None:
                    self._stop_logger.set()
                    await self._logger_task
                for b in self._backends:
                    await b.close()

            self._runner.call(_close)
        self._runner.close(cancel_remaining=True)

    def __enter__(self) -> Scheduler:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
