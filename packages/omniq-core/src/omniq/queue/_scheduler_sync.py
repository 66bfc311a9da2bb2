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
from omniq.models import OmniQError, Schedule, ScheduleState, redact_url
from omniq.storage import Backend, open_storage

from ._build import TaskSpec
from ._portal import BlockingRunner, loop_factory
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
        self._runner = BlockingRunner(loop_factory((settings or get_settings()).event_loop))
        self._backends: list[Backend] = []
        self._logger: AsyncEventLogger | None = None
        self._logger_task: asyncio.Task[None] | None = None
        self._stop_logger = asyncio.Event()
        self._async: AsyncScheduler = self._runner.run(
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
            raise OmniQError(f"{redact_url(url)} cannot hold both tasks and schedules")
        if events_url is not None:
            eb = backend if events_url == url else open_storage(events_url)
            if eb is not backend:
                await eb.connect()
                self._backends.append(eb)
            if eb.events is None:
                raise OmniQError(f"{redact_url(events_url)} cannot hold events")
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
        return self._runner.run(lambda: self._async.schedule(func, **options))

    def add(self, schedules: Sequence[Schedule]) -> None:
        self._runner.run(self._async.add, list(schedules))

    def get(self, schedule_id: str) -> Schedule | None:
        return self._runner.run(self._async.get, schedule_id)

    def list(self, *, state: ScheduleState | str | None = None) -> builtins.list[Schedule]:
        return self._runner.run(lambda: self._async.list(state=state))

    def delete(self, schedule_id: str) -> bool:
        return self._runner.run(self._async.delete, schedule_id)

    def pause(self, schedule_id: str) -> Schedule | None:
        return self._runner.run(self._async.pause, schedule_id)

    def resume(self, schedule_id: str) -> Schedule | None:
        return self._runner.run(self._async.resume, schedule_id)

    def tick(self, now: float | None = None) -> TickReport:
        return self._runner.run(self._async.tick, now)

    def run(self, *, handle_signals: bool = True) -> SchedulerStats:
        """Fire due runs until ``stop()``; from the main thread SIGTERM/SIGINT stop it."""
        restore = None
        if handle_signals and threading.current_thread() is threading.main_thread():
            restore = _install_signals(self.stop)
        try:
            return self._runner.run(self._async.run)
        finally:
            if restore is not None:
                restore()

    def stop(self) -> None:
        """Make ``run()`` return (callable from any thread but the loop's)."""

        async def _stop() -> None:
            self._async.stop()

        self._runner.portal.call(_stop)

    def close(self) -> None:
        """Flush events, close the stores and stop the helper loop."""
        if self._runner.started:

            async def _close() -> None:
                if self._logger_task is not None:
                    self._stop_logger.set()
                    await self._logger_task
                for b in self._backends:
                    await b.close()

            self._runner.run(_close)
        self._runner.close()

    def __enter__(self) -> Scheduler:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _install_signals(stop: Any) -> Any:
    """SIGTERM/SIGINT call ``stop`` (from a thread, so the handler never blocks on the
    loop); returns a function restoring the previous handlers."""
    import signal

    previous = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}

    def handler(signum: int, frame: object) -> None:
        threading.Thread(target=stop, daemon=True).start()

    for s in previous:
        signal.signal(s, handler)

    def restore() -> None:
        for s, h in previous.items():
            signal.signal(s, h)

    return restore
