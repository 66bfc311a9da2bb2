"""OmniQ's schedule operations (mixed into the facade) and background schedulers.

``ScheduleOps`` adds ``schedule``/``pause_schedule``/``resume_schedule``/
``list_schedules``/``get_schedule``/``delete_schedule`` (each with a ``_sync`` twin),
``scheduler()`` (a scheduler running in the background while a context is open) and
``run_scheduler()`` (in the foreground). Schedules live in the task queue's engine.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime, timedelta
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from omniq.events.bridge import stop_on_signals
from omniq.models import InvalidStateError, MisfirePolicy, Schedule, ScheduleState
from omniq.queue import AsyncScheduler, SchedulerStats, TaskSpec

from ._session import Session, SessionRunner

__all__ = ["ScheduleOps", "SchedulerHandle"]

T = TypeVar("T")


class _ScheduleHome(SessionRunner, Protocol):
    default_misfire_policy: MisfirePolicy | str
    default_misfire_grace: float


class ScheduleOps:
    """Schedule operations of ``OmniQ`` (async + ``_sync``)."""

    default_misfire_policy: MisfirePolicy | str = MisfirePolicy.RUN_ONCE
    """Misfire policy of schedules created without one: ``run_once`` (runs missed while
    no scheduler ran, or while paused, fire once) or ``skip``."""
    default_misfire_grace: float = 60.0
    """With ``skip``: how late (seconds) a run may still fire."""

    if TYPE_CHECKING:

        async def _call(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T: ...

        def _call_sync(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T: ...

    async def schedule(
        self,
        func: TaskSpec,
        *,
        cron: str | None = None,
        interval: float | timedelta | None = None,
        at: float | datetime | None = None,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        name: str | None = None,
        timezone: str | None = None,
        **task_options: Any,
    ) -> Schedule:
        """Run ``func(*args, **kwargs)`` by ``cron`` (5 fields, or 6 with leading
        seconds, read in ``timezone``), every ``interval`` seconds, or once ``at`` an
        instant. Schedule options: ``start_at``, ``end_at``, ``max_runs``,
        ``misfire_policy`` (``run_once``/``skip``), ``misfire_grace``; every other option
        (``queue``, ``priority``, ``ttl``, ``timeout``, ``max_retries``...) applies to each
        run's task. Returns the stored Schedule."""
        opts = dict(task_options, cron=cron, interval=interval, at=at, args=args)
        opts.update(kwargs=kwargs, name=name, timezone=timezone)
        return await self._call(_op_schedule, self._defaults(), func, opts)

    def schedule_sync(
        self,
        func: TaskSpec,
        *,
        cron: str | None = None,
        interval: float | timedelta | None = None,
        at: float | datetime | None = None,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        name: str | None = None,
        timezone: str | None = None,
        **task_options: Any,
    ) -> Schedule:
        """Blocking ``schedule`` (same options)."""
        opts = dict(task_options, cron=cron, interval=interval, at=at, args=args)
        opts.update(kwargs=kwargs, name=name, timezone=timezone)
        return self._call_sync(_op_schedule, self._defaults(), func, opts)

    async def pause_schedule(self, schedule_id: str | Schedule) -> Schedule | None:
        """Persistently pause (SCHEDULE_PAUSED event); None for an unknown id."""
        return await self._call(_op_pause, self._defaults(), _sid(schedule_id))

    def pause_schedule_sync(self, schedule_id: str | Schedule) -> Schedule | None:
        return self._call_sync(_op_pause, self._defaults(), _sid(schedule_id))

    async def resume_schedule(self, schedule_id: str | Schedule) -> Schedule | None:
        """Persistently resume from the next due time (SCHEDULE_RESUMED event); a run
        missed while paused fires once (``run_once``) or not at all (``skip``)."""
        return await self._call(_op_resume, self._defaults(), _sid(schedule_id))

    def resume_schedule_sync(self, schedule_id: str | Schedule) -> Schedule | None:
        return self._call_sync(_op_resume, self._defaults(), _sid(schedule_id))

    async def list_schedules(self, *, state: ScheduleState | str | None = None) -> list[Schedule]:
        """All schedules (or those active/paused), ordered by id."""
        return await self._call(_op_list, self._defaults(), state)

    def list_schedules_sync(self, *, state: ScheduleState | str | None = None) -> list[Schedule]:
        return self._call_sync(_op_list, self._defaults(), state)

    async def get_schedule(self, schedule_id: str) -> Schedule | None:
        """One schedule with its next/last run and run count."""
        return await self._call(_op_get, self._defaults(), schedule_id)

    def get_schedule_sync(self, schedule_id: str) -> Schedule | None:
        return self._call_sync(_op_get, self._defaults(), schedule_id)

    async def delete_schedule(self, schedule_id: str | Schedule) -> bool:
        """Delete a schedule (its enqueued tasks stay); True if it existed."""
        return await self._call(_op_delete, self._defaults(), _sid(schedule_id))

    def delete_schedule_sync(self, schedule_id: str | Schedule) -> bool:
        return self._call_sync(_op_delete, self._defaults(), _sid(schedule_id))

    def _defaults(self) -> tuple[MisfirePolicy | str, float]:
        return self.default_misfire_policy, self.default_misfire_grace

    def scheduler(self, **options: Any) -> SchedulerHandle:
        """A scheduler running in the background while the context is open: ``async with
        oq.scheduler(): ...`` or ``with oq.scheduler(): ...``. ``options`` go to
        AsyncScheduler (``max_sleep``, ``clock``...). Safe to run in every process."""
        return SchedulerHandle(self, options)

    async def run_scheduler(self, **options: Any) -> SchedulerStats:
        """Run a scheduler in this task until cancelled or the OmniQ closes."""
        handle = SchedulerHandle(self, options)
        await handle.start()
        return await self._call(_join, handle)

    def run_scheduler_sync(self, *, handle_signals: bool = True, **options: Any) -> SchedulerStats:
        """Blocking ``run_scheduler``; from the main thread SIGTERM/SIGINT stop it."""
        return SchedulerHandle(self, options).run_sync(handle_signals=handle_signals)


def _sid(schedule_id: str | Schedule) -> str:
    return schedule_id.id if isinstance(schedule_id, Schedule) else schedule_id


class SchedulerHandle:
    """A scheduler loop on OmniQ's home event loop; stopped when the context exits or
    the OmniQ closes."""

    def __init__(self, oq: _ScheduleHome, options: dict[str, Any]) -> None:
        self._oq = oq
        self._options = options
        self.scheduler: AsyncScheduler | None = None
        self._task: asyncio.Task[SchedulerStats] | None = None
        self._session: Session | None = None
        self.stats: SchedulerStats | None = None

    def wake(self) -> None:
        """Make the scheduler re-read its next due time (a schedule changed)."""
        if self.scheduler is not None:
            self.scheduler.wake()

    async def start_on_home(self, session: Session) -> None:
        if self._task is not None:
            raise InvalidStateError("this scheduler is already running")
        self._session = session
        opts = dict(self._options)
        opts.setdefault("misfire_policy", self._oq.default_misfire_policy)
        opts.setdefault("misfire_grace", self._oq.default_misfire_grace)
        self.scheduler = AsyncScheduler(session.queue, session.schedule_store(), **opts)
        self._task = asyncio.get_running_loop().create_task(self.scheduler.run())
        session.schedulers.add(self)
        await asyncio.sleep(0)

    async def stop_on_home(self) -> None:
        sched, task = self.scheduler, self._task
        if sched is None or task is None:
            return
        self._task = None
        sched.stop()
        try:
            self.stats = await task
        finally:
            if self._session is not None:
                self._session.schedulers.discard(self)

    async def join_on_home(self) -> SchedulerStats:
        task = self._task
        if task is None:
            raise InvalidStateError("this scheduler is not running")
        try:
            stats = await task
        finally:
            await self.stop_on_home()
        self.stats = stats
        return stats

    async def start(self) -> SchedulerHandle:
        await self._oq._call(_start, self)
        return self

    async def stop(self) -> None:
        await self._oq._call(_stop, self)

    def start_sync(self) -> SchedulerHandle:
        self._oq._call_sync(_start, self)
        return self

    def stop_sync(self) -> None:
        self._oq._call_sync(_stop, self)

    def run_sync(self, *, handle_signals: bool = True) -> SchedulerStats:
        """Start, then block until stopped (SIGTERM/SIGINT when on the main thread)."""
        self.start_sync()
        restore = None
        if handle_signals and threading.current_thread() is threading.main_thread():
            restore = stop_on_signals(self.stop_sync)
        try:
            return self._oq._call_sync(_join, self)
        except BaseException:
            self.stop_sync()
            raise
        finally:
            if restore is not None:
                restore()

    async def __aenter__(self) -> SchedulerHandle:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def __enter__(self) -> SchedulerHandle:
        return self.start_sync()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop_sync()


# -- operations run on the home loop (first argument: the session) --------------------------

Defaults = tuple[MisfirePolicy | str, float]


async def _op_schedule(
    session: Session, defaults: Defaults, func: TaskSpec, opts: dict[str, Any]
) -> Schedule:
    sched = await session.schedule_manager(*defaults).schedule(func, **opts)
    session.wake_schedulers()
    return sched


async def _op_pause(session: Session, defaults: Defaults, sid: str) -> Schedule | None:
    return await session.schedule_manager(*defaults).pause(sid)


async def _op_resume(session: Session, defaults: Defaults, sid: str) -> Schedule | None:
    sched = await session.schedule_manager(*defaults).resume(sid)
    session.wake_schedulers()
    return sched


async def _op_list(
    session: Session, defaults: Defaults, st: ScheduleState | str | None
) -> list[Schedule]:
    return await session.schedule_manager(*defaults).list(state=st)


async def _op_get(session: Session, defaults: Defaults, sid: str) -> Schedule | None:
    return await session.schedule_manager(*defaults).get(sid)


async def _op_delete(session: Session, defaults: Defaults, sid: str) -> bool:
    return await session.schedule_manager(*defaults).delete(sid)


async def _start(session: Session, handle: SchedulerHandle) -> None:
    await handle.start_on_home(session)


async def _join(session: Session, handle: SchedulerHandle) -> SchedulerStats:
    return await handle.join_on_home()


async def _stop(session: Session, handle: SchedulerHandle) -> None:
    await handle.stop_on_home()
