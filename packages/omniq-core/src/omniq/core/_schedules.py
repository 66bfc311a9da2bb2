"""OmniQ's schedule operations (mixed into the facade) and background schedulers.

``ScheduleOps`` adds ``schedule``/``pause_schedule``/``resume_schedule``/
``list_schedules``/``get_schedule``/``delete_schedule`` (each with a ``_sync`` twin),
``scheduler()`` (a scheduler running in the background while a context is open) and
``run_scheduler()`` (in the foreground). Schedules live in the task queue's engine.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime, timedelta
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from omniq.models import MisfirePolicy, OmniQError, Schedule, ScheduleState, redact_url
from omniq.queue import AsyncScheduler, SchedulerStats
from omniq.queue._build import TaskSpec
from omniq.storage import Backend, ScheduleStorage

if TYPE_CHECKING:
    from ._facade import _Open

__all__ = ["ScheduleOps", "SchedulerHandle", "stop_schedulers"]

T = TypeVar("T")

# Per open state: the scheduler used for management calls and the running handles.
_managers: weakref.WeakKeyDictionary[Any, AsyncScheduler] = weakref.WeakKeyDictionary()
_running: weakref.WeakKeyDictionary[Any, set[SchedulerHandle]] = weakref.WeakKeyDictionary()


def _store(oq: ScheduleOps, state: _Open) -> ScheduleStorage:
    spec = oq._task_spec
    backend: Backend | None = spec if isinstance(spec, Backend) else None
    if backend is None:
        backend = next((b for b in state.backends if b.tasks is state.queue.tasks), None)
    if backend is None or backend.schedules is None:
        url = backend.url if backend is not None else spec
        raise OmniQError(f"{redact_url(str(url))} cannot hold schedules")
    return backend.schedules


def _manager(oq: ScheduleOps, state: _Open) -> AsyncScheduler:
    m = _managers.get(state)
    if m is None:
        m = AsyncScheduler(
            state.queue,
            _store(oq, state),
            misfire_policy=oq.default_misfire_policy,
            misfire_grace=oq.default_misfire_grace,
        )
        _managers[state] = m
    return m


def _wake_local(state: _Open) -> None:
    for handle in _running.get(state, ()):
        if handle.scheduler is not None:
            handle.scheduler.wake()


class ScheduleOps:
    """Schedule operations of ``OmniQ`` (async + ``_sync``)."""

    default_misfire_policy: MisfirePolicy | str = MisfirePolicy.RUN_ONCE
    """Misfire policy of schedules created without one: ``run_once`` (runs missed while
    no scheduler ran, or while paused, fire once) or ``skip``."""
    default_misfire_grace: float = 60.0
    """With ``skip``: how late (seconds) a run may still fire."""

    if TYPE_CHECKING:
        _task_spec: str | Backend

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
        return await self._call(_op_schedule, self, func, opts)

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
        return self._call_sync(_op_schedule, self, func, opts)

    async def pause_schedule(self, schedule_id: str | Schedule) -> Schedule | None:
        """Persistently pause (SCHEDULE_PAUSED event); None for an unknown id."""
        return await self._call(_op_pause, self, _sid(schedule_id))

    def pause_schedule_sync(self, schedule_id: str | Schedule) -> Schedule | None:
        return self._call_sync(_op_pause, self, _sid(schedule_id))

    async def resume_schedule(self, schedule_id: str | Schedule) -> Schedule | None:
        """Persistently resume from the next due time (SCHEDULE_RESUMED event); a run
        missed while paused fires once (``run_once``) or not at all (``skip``)."""
        return await self._call(_op_resume, self, _sid(schedule_id))

    def resume_schedule_sync(self, schedule_id: str | Schedule) -> Schedule | None:
        return self._call_sync(_op_resume, self, _sid(schedule_id))

    async def list_schedules(self, *, state: ScheduleState | str | None = None) -> list[Schedule]:
        """All schedules (or those active/paused), ordered by id."""
        return await self._call(_op_list, self, state)

    def list_schedules_sync(self, *, state: ScheduleState | str | None = None) -> list[Schedule]:
        return self._call_sync(_op_list, self, state)

    async def get_schedule(self, schedule_id: str) -> Schedule | None:
        """One schedule with its next/last run and run count."""
        return await self._call(_op_get, self, schedule_id)

    def get_schedule_sync(self, schedule_id: str) -> Schedule | None:
        return self._call_sync(_op_get, self, schedule_id)

    async def delete_schedule(self, schedule_id: str | Schedule) -> bool:
        """Delete a schedule (its enqueued tasks stay); True if it existed."""
        return await self._call(_op_delete, self, _sid(schedule_id))

    def delete_schedule_sync(self, schedule_id: str | Schedule) -> bool:
        return self._call_sync(_op_delete, self, _sid(schedule_id))

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

    def __init__(self, oq: ScheduleOps, options: dict[str, Any]) -> None:
        self._oq = oq
        self._options = options
        self.scheduler: AsyncScheduler | None = None
        self._task: asyncio.Task[SchedulerStats] | None = None
        self._state: _Open | None = None
        self.stats: SchedulerStats | None = None

    async def start_on_home(self, state: _Open) -> None:
        if self._task is not None:
            raise OmniQError("this scheduler is already running")
        self._state = state
        opts = dict(self._options)
        opts.setdefault("misfire_policy", self._oq.default_misfire_policy)
        opts.setdefault("misfire_grace", self._oq.default_misfire_grace)
        self.scheduler = AsyncScheduler(state.queue, _store(self._oq, state), **opts)
        self._task = asyncio.get_running_loop().create_task(self.scheduler.run())
        _running.setdefault(state, set()).add(self)
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
            if self._state is not None:
                _running.get(self._state, set()).discard(self)

    async def join_on_home(self) -> SchedulerStats:
        task = self._task
        if task is None:
            raise OmniQError("this scheduler is not running")
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
            from omniq.queue._scheduler_sync import _install_signals

            restore = _install_signals(self.stop_sync)
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


async def stop_schedulers(state: _Open) -> None:
    """Stop the schedulers running on ``state`` (OmniQ.close calls this)."""
    for handle in list(_running.get(state, ())):
        await handle.stop_on_home()


# -- operations run on the home loop (first argument: the open state) -----------------------


async def _op_schedule(
    state: _Open, oq: ScheduleOps, func: TaskSpec, opts: dict[str, Any]
) -> Schedule:
    sched = await _manager(oq, state).schedule(func, **opts)
    _wake_local(state)
    return sched


async def _op_pause(state: _Open, oq: ScheduleOps, sid: str) -> Schedule | None:
    return await _manager(oq, state).pause(sid)


async def _op_resume(state: _Open, oq: ScheduleOps, sid: str) -> Schedule | None:
    sched = await _manager(oq, state).resume(sid)
    _wake_local(state)
    return sched


async def _op_list(state: _Open, oq: ScheduleOps, st: ScheduleState | str | None) -> list[Schedule]:
    return await _manager(oq, state).list(state=st)


async def _op_get(state: _Open, oq: ScheduleOps, sid: str) -> Schedule | None:
    return await _manager(oq, state).get(sid)


async def _op_delete(state: _Open, oq: ScheduleOps, sid: str) -> bool:
    return await _manager(oq, state).delete(sid)


async def _start(state: _Open, handle: SchedulerHandle) -> None:
    await handle.start_on_home(state)


async def _join(state: _Open, handle: SchedulerHandle) -> SchedulerStats:
    return await handle.join_on_home()


async def _stop(state: _Open, handle: SchedulerHandle) -> None:
    await handle.stop_on_home()
