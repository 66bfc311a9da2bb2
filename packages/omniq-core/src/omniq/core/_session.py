"""OmniQ's connected state, and the protocols the facade's parts depend on.

A ``Session`` is everything that exists while an ``OmniQ`` is connected: the stores it
opened, the task queue over them, the event logger, the background workers and
schedulers, and a portal into its home event loop. The facade owns one at a time.

The facade's parts (schedules, dead letters, task functions, workers) reach the facade
only through the protocols here (``SessionRunner``, ``Enqueuer``), so none of them
imports the facade module.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Generic, Protocol, TypeVar, Unpack

from omniq.config import Settings
from omniq.events import AsyncEventLogger
from omniq.events.bridge import LoopPortal, serve_portal
from omniq.models import ConfigError, MisfirePolicy, Task
from omniq.queue import AsyncScheduler, AsyncTaskQueue, BreakerRegistry, EnqueueOptions, TaskSpec
from omniq.storage import Backend, ScheduleStorage, open_storage

from ._gevent_boot import patched

__all__ = ["BackgroundRun", "Enqueuer", "ScheduledRun", "Session", "SessionRunner"]

T = TypeVar("T")


class SessionRunner(Protocol):
    """Runs ``fn(session, *args)`` on the home loop, from any loop or thread."""

    async def _call(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T: ...

    def _call_sync(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T: ...


class Enqueuer(Protocol):
    """Builds and enqueues tasks with an OmniQ's defaults (what ``@oq.task`` needs)."""

    def build(
        self,
        func: TaskSpec,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        **options: Unpack[EnqueueOptions],
    ) -> Task: ...

    async def enqueue(
        self,
        func: TaskSpec,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        **options: Unpack[EnqueueOptions],
    ) -> Task: ...

    def enqueue_sync(
        self,
        func: TaskSpec,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        **options: Unpack[EnqueueOptions],
    ) -> Task: ...


class BackgroundRun(Protocol):
    """A worker running in the background on the home loop."""

    async def stop_on_home(self) -> None: ...


class ScheduledRun(BackgroundRun, Protocol):
    """A scheduler running in the background on the home loop."""

    def wake(self) -> None: ...


class Session:
    """What exists while OmniQ is connected on its home loop (``loop``).

    ``owned`` are the backends OmniQ opened (and closes); ``task_backend`` holds the
    task queue (and the schedules, when the engine can). ``portal`` lets other threads
    and loops run calls on the home loop. A host task on the home loop keeps the
    event logger and the portal entered (each must be entered and exited by one task).
    """

    def __init__(
        self,
        queue: AsyncTaskQueue,
        task_backend: Backend,
        owned: list[Backend],
        logger: _Held[AsyncEventLogger] | None,
        portal: _Held[LoopPortal],
    ) -> None:
        self.queue = queue
        self.task_backend = task_backend
        self.owned = owned
        self.logger = logger.value if logger is not None else None
        self.portal = portal.value
        self.loop = asyncio.get_running_loop()
        self.workers: set[BackgroundRun] = set()
        self.schedulers: set[ScheduledRun] = set()
        self._manager: AsyncScheduler | None = None
        self._held_logger = logger
        self._held_portal = portal

    @classmethod
    async def connect(
        cls,
        task_spec: str | Backend,
        result_spec: str | Backend | None,
        event_spec: str | Backend | None,
        settings: Settings,
        breakers: BreakerRegistry,
    ) -> Session:
        """Open (or reuse) the backends, build the queue and start the session on the
        running loop; what was opened here is closed again if that fails."""
        backends: list[Backend] = []
        owned: list[Backend] = []
        held: list[_Held[Any]] = []

        def get(spec: str | Backend) -> Backend:
            if isinstance(spec, Backend):
                b = spec
            else:
                for existing in backends:
                    if getattr(existing, "url", None) == spec:
                        return existing
                b = open_storage(spec)
                owned.append(b)
            if b not in backends:
                backends.append(b)
            return b

        try:
            tb = get(task_spec)
            await tb.connect()
            rb = get(result_spec) if result_spec is not None else tb
            eb = get(event_spec) if event_spec is not None else None
            for b in backends:
                await b.connect()
            if tb.tasks is None:
                raise ConfigError("task_queue", tb.url, "a backend that can hold a task queue")
            logger: _Held[AsyncEventLogger] | None = None
            if eb is not None:
                if eb.events is None:
                    raise ConfigError("event_storage", eb.url, "a backend that can hold events")
                logger = await _Held.enter(
                    AsyncEventLogger(
                        eb.events,
                        buffer_size=settings.event_buffer_size,
                        retention_seconds=settings.event_retention_seconds,
                        retention_count=settings.event_retention_count,
                    )
                )
                held.append(logger)
            queue = AsyncTaskQueue(
                tb.tasks,
                rb.results,
                logger.value if logger else None,
                settings=settings,
                breakers=breakers,
            )
            portal = await _Held.enter(serve_portal(warn=not patched()))
        except BaseException:
            for h in held:
                await h.exit()
            for b in owned:
                await b.close()
            raise
        return cls(queue, tb, owned, logger, portal)

    # -- schedules -------------------------------------------------------------------------

    def schedule_store(self) -> ScheduleStorage:
        """The task queue's engine's schedule store (ConfigError when it has none)."""
        store = self.task_backend.schedules
        if store is None:
            url = self.task_backend.url
            raise ConfigError("task_queue", url, "a backend that can also hold schedules")
        return store

    def schedule_manager(self, policy: MisfirePolicy | str, grace: float) -> AsyncScheduler:
        """The scheduler used for schedule management calls (made on first use)."""
        if self._manager is None:
            self._manager = AsyncScheduler(
                self.queue, self.schedule_store(), misfire_policy=policy, misfire_grace=grace
            )
        return self._manager

    def wake_schedulers(self) -> None:
        """Make the background schedulers re-read their next due time."""
        for run in self.schedulers:
            run.wake()

    # -- closing ---------------------------------------------------------------------------

    async def close(self) -> None:
        """Stop background schedulers and workers, flush events and close the backends
        this session opened; the portal stops once the calls running in it return."""
        for scheduled in list(self.schedulers):
            await scheduled.stop_on_home()
        for worker in list(self.workers):
            await worker.stop_on_home()
        if self._held_logger is not None:
            await self._held_logger.exit()
        for b in self.owned:
            await b.close()
        # This call may itself run in the portal, which waits for its calls to end:
        # signal it, do not wait for it.
        self._held_portal.signal_exit()


class _Held(Generic[T]):
    """An async context manager held open by a task of its own on the running loop.

    anyio context managers (task groups) must be entered and exited by one task, while
    OmniQ's calls each run in their own task; a long-lived host task owns them.
    """

    def __init__(self, value: T, task: asyncio.Task[None], stop: asyncio.Event) -> None:
        self.value = value
        self._task = task
        self._stop = stop

    @classmethod
    async def enter(cls, cm: contextlib.AbstractAsyncContextManager[T]) -> _Held[T]:
        """Enter ``cm`` in a new host task; returns once it is entered (or raises what
        entering raised)."""
        entered: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        stop = asyncio.Event()

        async def host() -> None:
            async with cm as value:
                entered.set_result(value)
                await stop.wait()

        task = asyncio.get_running_loop().create_task(host())
        waiters: list[asyncio.Future[Any]] = [entered, task]
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        if not entered.done():
            task.result()  # raises what entering raised
        return cls(entered.result(), task, stop)

    def signal_exit(self) -> None:
        """Let the host task exit the context manager, without waiting for it."""
        self._stop.set()

    async def exit(self) -> None:
        """Exit the context manager and wait until it is exited."""
        self._stop.set()
        await self._task
