"""The OmniQ facade: one object for enqueueing, results, workers and events.

Every operation is ``async def name(...)`` with a blocking twin ``name_sync(...)``.
Storage connections belong to the event loop that opened them (the *home* loop): the
first async call opens them on the caller's loop, the first sync call on a private
loop in a helper thread. Calls from any other loop or thread are forwarded to the home
loop, so mixing the two APIs, threads and loops is safe.
"""

from __future__ import annotations

import asyncio
import functools
import os
import time
import weakref
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any, ParamSpec, TypeVar, Unpack, overload

from omniq.config import ConfigProvider, Settings
from omniq.events.bridge import ThreadPortal, loop_factory
from omniq.models import (
    BackendUnavailableError,
    EventLoopError,
    InvalidStateError,
    Task,
    TaskEvent,
    TaskResult,
    TaskStatus,
    WorkerType,
    redact_url,
    validate_task,
    validate_task_id,
)
from omniq.queue import (
    AsyncTaskQueue,
    BreakerRegistry,
    EnqueueOptions,
    TaskQueue,
    TaskSpec,
    build_task,
)
from omniq.serialization import SerializationManager
from omniq.storage import Backend
from omniq.workers import PoolStats

from ._browse import BrowseOps
from ._dead_letters import DeadLetterOps
from ._gevent_boot import patched
from ._groups import GroupOps
from ._inline import InlineOps
from ._limits import LimitOps
from ._queues import QueueOps
from ._schedules import ScheduleOps
from ._session import Session
from ._store_wait import StoreWait
from ._task_control import TaskControlOps
from ._taskfn import TaskFunction, make_task_function
from ._urls import resolve_urls
from ._worker import WorkerHandle, run_pool
from ._worker_registry import WorkerOps

__all__ = ["OmniQ"]

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")

StoreSpec = str | Backend | None
EnqueueItem = Task | TaskSpec | tuple[Any, ...]

_instances: weakref.WeakSet[OmniQ] = weakref.WeakSet()


def _after_fork() -> None:
    for oq in list(_instances):
        oq._forget()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)


class OmniQ(
    ScheduleOps,
    DeadLetterOps,
    QueueOps,
    LimitOps,
    WorkerOps,
    TaskControlOps,
    InlineOps,
    BrowseOps,
    GroupOps,
):
    """Task queue, result store and event log in one object.

    ``task_queue``, ``result_storage`` and ``event_storage`` are URLs (``sqlite:///x.db``,
    ``memory://``, ``redis://...``) or ``omniq.storage.Backend`` objects. Results default
    to the task queue's engine; events are off unless configured. Without arguments the
    ``OMNIQ_*`` environment decides, else everything runs embedded on SQLite under
    BASE_DIR. ``circuit_breaker`` sets the per-function breakers' threshold and
    cool-down (default: open after 5 consecutive failures for 30 s). ``overrides`` are
    setting names in lowercase (``result_ttl=60``,
    ``max_workers=4``, ``dill_enabled=True``...), validated like the environment.
    ``inline=True`` runs each task at enqueue, in this process, through the real
    serialization, retries, dependencies, follow-ups, events and results (for tests;
    see ``drain``): enqueue returns the tasks as they ended and raises
    ``TaskFailedError`` when one ended in error.
    """

    def __init__(
        self,
        task_queue: StoreSpec = None,
        result_storage: StoreSpec = None,
        event_storage: StoreSpec = None,
        *,
        env: Mapping[str, str] | None = None,
        settings: Settings | None = None,
        circuit_breaker: BreakerRegistry | None = None,
        inline: bool = False,
        **overrides: Any,
    ) -> None:
        self.inline = inline
        self._enqueue_op = self._inline_enqueue if inline else _enqueue_many
        if settings is not None:
            self.settings = settings.replace(**overrides) if overrides else settings
        else:
            self.settings = ConfigProvider(env, **overrides).settings
        # A task queue URL given here: the settings' default store is not resolved (nor
        # its backend imported) unless the event store follows it.
        urls = resolve_urls(
            self.settings, tasks=task_queue if isinstance(task_queue, str) else None
        )
        self._task_spec: str | Backend = task_queue if task_queue is not None else urls[0]
        self._result_spec: str | Backend | None = (
            result_storage if result_storage is not None else urls[1]
        )
        self._event_spec: str | Backend | None = (
            event_storage if event_storage is not None else urls[2]
        )
        self.breakers = circuit_breaker or BreakerRegistry()
        # Under gevent the greenlets share one OS thread, so a loop "running in this
        # thread" is not a sign of a blocking call from async code: no warning there.
        self._thread = ThreadPortal(loop_factory(self.settings.event_loop), warn=not patched())
        self._session: Session | None = None
        _instances.add(self)

    def __repr__(self) -> str:
        return f"OmniQ(task_queue={redact_url(self.task_queue_url)!r})"

    @property
    def task_queue_url(self) -> str:
        spec = self._task_spec
        return spec if isinstance(spec, str) else spec.url

    # -- connection and loop plumbing --------------------------------------------------------

    def _forget(self) -> None:
        """After fork in the child: the parent's loops and connections are not ours."""
        self._session = None

    def _live(self) -> Session | None:
        """The session, unless there is none or its home loop has been closed."""
        session = self._session
        if session is None or session.loop.is_closed():
            return None
        return session

    async def _ensure(self) -> Session:
        """The session on the running loop, connecting first if there is none."""
        session = self._session
        loop = asyncio.get_running_loop()
        if session is not None and session.loop is loop:
            return session
        if session is not None and not session.loop.is_closed():
            raise EventLoopError("OmniQ is bound to another event loop")  # callers forward
        self._session = await Session.connect(
            self._task_spec, self._result_spec, self._event_spec, self.settings, self.breakers
        )
        return self._session

    async def _call(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        """Run ``fn(session, *args)`` on the home loop, from any loop."""
        session = self._session
        if session is not None and session.loop is asyncio.get_running_loop():
            return await fn(session, *args)  # the common case: on the home loop
        session = self._live()
        if session is None or session.loop is asyncio.get_running_loop():
            return await fn(await self._ensure(), *args)
        return await session.portal.call_async(self._on_home, fn, *args)

    async def _on_home(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        return await fn(await self._ensure(), *args)

    def _call_sync(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        """Run ``fn(session, *args)`` on the home loop and wait; without a session, the
        helper thread's loop becomes home."""
        session = self._live()
        portal = session.portal if session is not None else self._thread.portal
        result: T = portal.call(self._on_home, fn, *args)
        return result

    # -- lifecycle ---------------------------------------------------------------------------

    async def open(self, *, wait: float = 0.0) -> OmniQ:
        """Connect now (otherwise the first call does).

        ``wait``: seconds to keep trying while a store is unreachable
        (``BackendUnavailableError``), for a process that may start before its server
        (a worker under a container platform): the pause between tries starts at 0.5 s
        and doubles up to 5 s, each failed try is logged at WARNING on the
        ``omniq.core`` logger, and past ``wait`` the last error is raised. Other errors
        (a URL that cannot be parsed, a missing extra) are raised at once.
        """
        pauses = StoreWait(wait)
        while True:
            try:
                await self._call(_noop)
                return self
            except BackendUnavailableError as exc:
                step = pauses.after(exc)
                if step is None:
                    raise
            await asyncio.sleep(step)

    def open_sync(self, *, wait: float = 0.0) -> OmniQ:
        """``open`` from synchronous code (the pauses block the calling thread)."""
        pauses = StoreWait(wait)
        while True:
            try:
                self._call_sync(_noop)
                return self
            except BackendUnavailableError as exc:
                step = pauses.after(exc)
                if step is None:
                    raise
            time.sleep(step)

    async def close(self) -> None:
        """Stop background workers, flush events, close the stores OmniQ opened."""
        if self._live() is not None:
            await self._call(_shutdown)
        self._session = None

    def close_sync(self) -> None:
        if self._live() is not None:
            self._call_sync(_shutdown)
        self._session = None
        self._thread.close(cancel_remaining=True)

    async def __aenter__(self) -> OmniQ:
        return await self.open()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def __enter__(self) -> OmniQ:
        return self.open_sync()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close_sync()

    # -- enqueueing --------------------------------------------------------------------------

    def build(
        self,
        func: TaskSpec,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        **options: Unpack[EnqueueOptions],
    ) -> Task:
        """A Task with this OmniQ's defaults, not stored (for ``enqueue_many`` or as a
        ``on_success``/``on_failure`` follow-up)."""
        ser = (
            self._session.queue.serializer
            if self._session
            else SerializationManager.from_settings(self.settings)
        )
        return build_task(ser, self.settings, func, args, kwargs, **options)

    async def enqueue(
        self,
        func: TaskSpec,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        *,
        connection: object | None = None,
        **options: Unpack[EnqueueOptions],
    ) -> Task:
        """Enqueue ``func(*args, **kwargs)``; returns the stored Task (for a live
        idempotency ``key``, the task already holding it). ``func`` is a callable or an
        import path ``"module:qualname"``; lambdas and closures need dill enabled. The
        options are those of ``EnqueueOptions`` (queue, priority, eta/delay, ttl, timeout,
        retries, dependencies, follow-ups, key, worker hint, metadata).

        ``connection``: your open database connection (asyncpg or psycopg 3 on a
        PostgreSQL task store, sqlite3 on a SQLite one): the task is written in its
        transaction, so it exists only if that transaction commits. Other task stores
        raise ``TransactionalEnqueueError`` (docs/integrations.md)."""
        task = self.build(func, args, kwargs, **options)
        return (await self._call(self._enqueue_with(connection), [task]))[0]

    def enqueue_sync(
        self,
        func: TaskSpec,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        *,
        connection: object | None = None,
        **options: Unpack[EnqueueOptions],
    ) -> Task:
        """Blocking ``enqueue`` (same options; ``connection`` a psycopg 3 or sqlite3
        connection)."""
        task = self.build(func, args, kwargs, **options)
        return self._call_sync(self._enqueue_with(connection), [task])[0]

    def _enqueue_with(self, connection: object | None) -> Callable[..., Awaitable[list[Task]]]:
        """The enqueue operation: this OmniQ's own (stored, or run inline), or, given the
        caller's ``connection``, the store's transactional enqueue on it."""
        if connection is None:
            return self._enqueue_op
        return functools.partial(_enqueue_many, connection=connection)

    def _items(self, items: Iterable[EnqueueItem], options: EnqueueOptions) -> list[Task]:
        out: list[Task] = []
        for item in items:
            if isinstance(item, Task):  # built elsewhere, maybe changed since: check it
                out.append(validate_task(item))
            elif isinstance(item, tuple):
                func, *rest = item
                args = rest[0] if rest else ()
                kwargs = rest[1] if len(rest) > 1 else None
                out.append(self.build(func, args, kwargs, **options))
            else:
                out.append(self.build(item, (), None, **options))
        return out

    async def enqueue_many(
        self,
        items: Iterable[EnqueueItem],
        *,
        connection: object | None = None,
        **options: Unpack[EnqueueOptions],
    ) -> list[Task]:
        """Enqueue a batch in one storage round trip. Items are Tasks (``oq.build``),
        callables/paths, or ``(func, args[, kwargs])`` tuples; ``options`` apply to the
        non-Task items. ``connection``: as for ``enqueue`` (the whole batch is written in
        that transaction)."""
        return await self._call(self._enqueue_with(connection), self._items(items, options))

    def enqueue_many_sync(
        self,
        items: Iterable[EnqueueItem],
        *,
        connection: object | None = None,
        **options: Unpack[EnqueueOptions],
    ) -> list[Task]:
        return self._call_sync(self._enqueue_with(connection), self._items(items, options))

    @overload
    def task(self, func: Callable[P, R], /) -> TaskFunction[P, R]: ...

    @overload
    def task(self, /, **options: Any) -> Callable[[Callable[P, R]], TaskFunction[P, R]]: ...

    def task(self, func: Any = None, /, **options: Any) -> Any:
        """Decorator: ``@oq.task`` or ``@oq.task(queue=..., max_retries=...)``. The function
        stays callable and gains ``.enqueue(...)``/``.enqueue_sync(...)``."""
        if func is not None:
            return make_task_function(self, func, options)
        return lambda f: make_task_function(self, f, options)

    # -- reading -----------------------------------------------------------------------------

    async def get_result(
        self,
        task_id: str | Task,
        *,
        wait: bool = False,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> TaskResult | None:
        """The task's result with ``.value`` decoded, or None. ``wait`` blocks until it
        exists (up to ``timeout`` seconds)."""
        tid = task_id.id if isinstance(task_id, Task) else task_id
        return await self._call(_get_result, tid, wait, timeout)

    def get_result_sync(
        self, task_id: str | Task, *, wait: bool = False, timeout: float | None = None
    ) -> TaskResult | None:
        tid = task_id.id if isinstance(task_id, Task) else task_id
        return self._call_sync(_get_result, tid, wait, timeout)

    async def get_task(self, task_id: str) -> Task | None:
        """The task with its current status and attempt count."""
        return await self._call(_get_task, task_id)

    def get_task_sync(self, task_id: str) -> Task | None:
        return self._call_sync(_get_task, task_id)

    async def list_tasks(
        self,
        *,
        queue: str | None = None,
        status: TaskStatus | str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[Task]:
        """Tasks in creation order, filtered by queue and status."""
        return await self._call(_list_tasks, queue, status, limit, offset)

    def list_tasks_sync(
        self,
        *,
        queue: str | None = None,
        status: TaskStatus | str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[Task]:
        return self._call_sync(_list_tasks, queue, status, limit, offset)

    async def counts(self) -> dict[tuple[str, TaskStatus], int]:
        """Task counts by (queue, status)."""
        return await self._call(_counts)

    def counts_sync(self) -> dict[tuple[str, TaskStatus], int]:
        return self._call_sync(_counts)

    async def cancel(self, task_id: str | Task) -> bool:
        """Cancel a task that has not finished (and, by policy, its dependents); True if
        it was cancelled."""
        tid = task_id.id if isinstance(task_id, Task) else task_id
        return bool(await self._call(_cancel, tid))

    def cancel_sync(self, task_id: str | Task) -> bool:
        tid = task_id.id if isinstance(task_id, Task) else task_id
        return bool(self._call_sync(_cancel, tid))

    async def get_events(
        self, task_id: str | Task | None = None, *, limit: int | None = None
    ) -> list[TaskEvent]:
        """The task's lifecycle events, oldest first (empty when events are off)."""
        tid = task_id.id if isinstance(task_id, Task) else task_id
        return await self._call(_get_events, tid, limit)

    def get_events_sync(
        self, task_id: str | Task | None = None, *, limit: int | None = None
    ) -> list[TaskEvent]:
        tid = task_id.id if isinstance(task_id, Task) else task_id
        return self._call_sync(_get_events, tid, limit)

    # -- workers -----------------------------------------------------------------------------

    async def run_worker(
        self,
        *,
        queues: Sequence[str] | None = None,
        concurrency: int | None = None,
        worker_type: WorkerType | str | None = None,
        burst: bool = False,
        processes: int = 1,
        **pool_options: Any,
    ) -> PoolStats:
        """Run a worker in this task until stopped (SIGTERM/cancel) or, with ``burst``,
        until nothing is due and nothing runs. Returns the run's counters.

        ``processes`` > 1 runs that many worker processes instead (each with these
        options, so ``concurrency`` is per process) under a supervisor that restarts
        one that dies; cancelling stops them gracefully. The counters are summed."""
        opts = dict(pool_options, queues=queues, concurrency=concurrency, worker_type=worker_type)
        if not (type(processes) is int and processes == 1):  # else no supervisor to load
            from ._supervisor import check_processes, supervisor_for

            if check_processes(processes) > 1:
                return await supervisor_for(self, opts, processes, burst=burst).run_async()
        return await self._call(_run_worker, opts, burst)

    def run_worker_sync(
        self,
        *,
        queues: Sequence[str] | None = None,
        concurrency: int | None = None,
        worker_type: WorkerType | str | None = None,
        burst: bool = False,
        handle_signals: bool = True,
        processes: int = 1,
        **pool_options: Any,
    ) -> PoolStats:
        """Blocking ``run_worker``; from the main thread, SIGTERM/SIGINT stop it gracefully
        (a second signal at once). ``processes`` > 1: see ``run_worker``; the signals
        are passed on to the worker processes."""
        opts = dict(pool_options, queues=queues, concurrency=concurrency, worker_type=worker_type)
        if not (type(processes) is int and processes == 1):  # else no supervisor to load
            from ._supervisor import check_processes, supervisor_for

            if check_processes(processes) > 1:
                sup = supervisor_for(self, opts, processes, burst=burst)
                return sup.run(handle_signals=handle_signals)
        return WorkerHandle(self, opts, burst=burst).run_sync(handle_signals=handle_signals)

    def worker(
        self,
        *,
        queues: Sequence[str] | None = None,
        concurrency: int | None = None,
        worker_type: WorkerType | str | None = None,
        **pool_options: Any,
    ) -> WorkerHandle:
        """A worker running in the background while the context is open: ``async with
        oq.worker(): ...`` or ``with oq.worker(): ...``. Leaving stops it gracefully."""
        opts = dict(pool_options, queues=queues, concurrency=concurrency, worker_type=worker_type)
        return WorkerHandle(self, opts)

    @property
    def queue(self) -> AsyncTaskQueue:
        """The async core (only valid on the home loop, after the first call)."""
        if self._session is None:
            raise InvalidStateError("OmniQ is not open yet")
        return self._session.queue

    def task_queue(self) -> TaskQueue:
        """A blocking TaskQueue over a fresh connection to the same task store URL."""
        return TaskQueue(self.task_queue_url, settings=self.settings)

    async def flush_events(self) -> None:
        """Write buffered events now."""
        await self._call(_flush_events)

    def flush_events_sync(self) -> None:
        self._call_sync(_flush_events)


# -- operations run on the home loop (first argument: the session) --------------------------


async def _noop(session: Session) -> None:
    return None


async def _enqueue_many(
    session: Session, tasks: list[Task], connection: object | None = None
) -> list[Task]:
    # validated: see _items and build
    return await session.queue.enqueue_many(tasks, validated=True, connection=connection)


async def _get_result(
    session: Session,
    tid: str,
    wait: bool,
    timeout: float | None,  # noqa: ASYNC109
) -> TaskResult | None:
    return await session.queue.get_result(tid, wait=wait, timeout=timeout)


async def _get_task(session: Session, tid: str) -> Task | None:
    return await session.queue.get_task(tid)


async def _list_tasks(
    session: Session, queue: str | None, status: TaskStatus | str | None, limit: int, offset: int
) -> list[Task]:
    return await session.queue.list_tasks(queue=queue, status=status, limit=limit, offset=offset)


async def _counts(session: Session) -> dict[tuple[str, TaskStatus], int]:
    return await session.queue.counts()


async def _cancel(session: Session, tid: str) -> bool:
    return bool(await session.queue.cancel(tid))


async def _flush_events(session: Session) -> None:
    if session.logger is not None:
        await session.logger.flush()


async def _get_events(session: Session, tid: str | None, limit: int | None) -> list[TaskEvent]:
    logger = session.logger
    if tid is not None:
        validate_task_id(tid)
    if logger is None or logger.storage is None:
        return []
    await logger.flush()
    return await logger.storage.query(task_id=tid, limit=limit)


async def _run_worker(session: Session, opts: dict[str, Any], burst: bool) -> PoolStats:
    return await run_pool(session.queue, opts, burst=burst, registry=session.task_backend.workers)


async def _shutdown(session: Session) -> None:
    await session.close()
