"""AsyncWorkerPool: claims tasks from a TaskSource, runs them, reports Outcomes in batches."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

import anyio

from omniq.models import (
    BackendUnavailableError,
    ClaimedTask,
    InvalidTaskError,
    OmniQError,
    Payload,
    Progress,
    Task,
    TaskCancelledError,
    TaskStatus,
    WorkerType,
    now,
    parse_rate,
)
from omniq.serialization import SerializationManager

from ._async import AsyncWorker, is_async_callable
from ._base import Worker
from ._context import TaskContext, set_current
from ._gevent import require_worker_extra
from ._process import ProcessWorker, check_process_callable
from ._support import (
    CANCEL,
    DONE,
    LOST,
    QUEUED,
    RELEASE,
    RUNNING,
    Entry,
    expired_outcome,
    failure_outcome,
    wait_first,
    worker_type_of,
)
from ._thread import ThreadWorker
from ._types import (
    CancelSource,
    Outcome,
    OutcomeSink,
    PoolStats,
    ProgressSource,
    RunEndSource,
    RunTracer,
    TaskSource,
    WorkerPresence,
)

if TYPE_CHECKING:
    from omniq.config import Settings

__all__ = ["AsyncWorkerPool"]

_EMPTY_KWARGS: dict[str, Any] = {}
_NO_SCOPE = contextlib.nullcontext()


class _LateStart(Exception):
    """A rate-limited task reached its function after its start deadline."""


def _guard(rate_limit: str) -> float:
    """Seconds a rate-limited task may start after its counted start (the rate's guard)."""
    rate = parse_rate(rate_limit)
    return rate.window - rate.per


def _gated(fn: Callable[..., Any], deadline: float) -> Callable[..., Any]:
    """``fn`` checking, as its very first step (in the thread, greenlet or coroutine that
    runs it), that ``time.monotonic()`` has not passed ``deadline``."""
    if is_async_callable(fn):

        @functools.wraps(fn)
        async def agated(*args: Any, **kwargs: Any) -> Any:
            if time.monotonic() > deadline:
                raise _LateStart
            return await fn(*args, **kwargs)

        return agated

    @functools.wraps(fn)
    def gated(*args: Any, **kwargs: Any) -> Any:
        if time.monotonic() > deadline:
            raise _LateStart
        return fn(*args, **kwargs)

    return gated


log = logging.getLogger("omniq.workers")


class _Refused(OmniQError):
    """Carries the InvalidTaskError of a task refused before its function was imported."""

    def __init__(self, error: InvalidTaskError) -> None:
        super().__init__(str(error))
        self.error = error


class AsyncWorkerPool:
    """Runs claimed tasks on async, thread, process and gevent workers.

    The pool claims only as many tasks as it has free slots (``max_workers`` overall),
    routes each to a worker type (the task's ``worker`` hint, else the function's
    ``__omniq_worker__`` attribute, else async for coroutine functions, else
    ``default_worker``), bounds each type by its own capacity, skips tasks whose TTL
    passed (``expired`` outcome), enforces timeouts, renews leases every
    ``renew_interval`` seconds while it holds tasks, and hands outcomes to the sink in
    batches. Policy (retries, dependencies, callbacks) is the sink's business.

    ``stop()`` (or SIGTERM with ``install_signal_handlers``) stops claiming, releases
    queued tasks at once, gives running tasks ``shutdown_grace`` seconds, then cancels
    them and releases them to the source; ``stop(force=True)`` (a second signal) cuts
    the grace short. Every claim ends exactly once: reported, released, or lease lost.

    Each run sees its ``omniq.workers.current_task()``. Progress it records is kept in
    memory and written through the source (``ProgressSource``) at most every
    ``progress_interval`` seconds per task; a source that is a ``CancelSource`` tells the
    pool when ``cancel`` ended a task it holds: the task's ``cancelled`` flag turns true
    and the run is stopped where the worker type allows (async: CancelledError; process:
    the child is killed and replaced; gevent: the greenlet is killed; a thread runs on,
    its result discarded, its slot held until it returns). A ``RunEndSource`` is told of
    each outcome as its run ends, ahead of the batched report.

    A ``tracer`` (``RunTracer``) wraps each call of a task's function, e.g. in an
    OpenTelemetry span.

    A task's function is imported only from modules ``allowed_modules`` admits
    (default: ``settings.allowed_modules``, i.e. ``OMNIQ_ALLOWED_MODULES``), checked
    before anything is imported; a refused task ends at once as an ``error`` outcome that
    is not retried (``Outcome.retryable`` is False). A ``default_worker`` whose extra is
    missing (gevent) raises MissingExtraError here, before anything is claimed.

    Defaults come from ``settings`` (``omniq.config.get_settings()`` when omitted, so
    ``OMNIQ_*`` variables apply); explicit arguments win.
    """

    def __init__(
        self,
        source: TaskSource,
        sink: OutcomeSink,
        *,
        settings: Settings | None = None,
        serializer: SerializationManager | None = None,
        max_workers: int | None = None,
        thread_workers: int | None = None,
        process_workers: int | None = None,
        gevent_workers: int | None = None,
        default_worker: WorkerType | str | None = None,
        default_timeout: float | None = None,
        shutdown_grace: float | None = None,
        lease_seconds: float | None = None,
        renew_interval: float | None = None,
        claim_batch: int = 512,
        report_batch: int = 512,
        flush_interval: float = 0.005,
        idle_wait: float = 5.0,
        progress_interval: float = 1.0,
        worker_id: str | None = None,
        allowed_modules: Sequence[str] | None = None,
        workers: Mapping[WorkerType, Worker] | None = None,
        presence: WorkerPresence | None = None,
        tracer: RunTracer | None = None,
    ) -> None:
        if settings is None:
            from omniq.config import get_settings

            settings = get_settings()
        self._settings = settings
        self.source = source
        self.sink = sink
        self._run_ended = source.run_ended if isinstance(source, RunEndSource) else None
        self.serializer = (
            serializer if serializer is not None else SerializationManager.from_settings(settings)
        )
        self.max_workers = int(max_workers if max_workers is not None else settings.max_workers)
        if self.max_workers < 1:
            raise InvalidTaskError(f"max_workers must be at least 1, got {self.max_workers}")
        self._capacity = {
            WorkerType.ASYNC: self.max_workers,
            WorkerType.THREAD: thread_workers
            if thread_workers is not None
            else settings.thread_workers,
            WorkerType.PROCESS: (
                process_workers if process_workers is not None else settings.process_workers
            ),
            WorkerType.GEVENT: gevent_workers
            if gevent_workers is not None
            else settings.gevent_workers,
        }
        self.default_worker = worker_type_of(
            default_worker if default_worker is not None else settings.default_worker,
            "default_worker",
        )
        timeout = default_timeout if default_timeout is not None else settings.task_timeout
        self.default_timeout: float | None = timeout if timeout and timeout > 0 else None
        self.shutdown_grace = float(
            shutdown_grace if shutdown_grace is not None else settings.shutdown_grace
        )
        lease = lease_seconds if lease_seconds is not None else settings.lease_seconds
        self.renew_interval = float(renew_interval if renew_interval is not None else lease / 3)
        self.claim_batch = max(1, claim_batch)
        self.report_batch = max(1, report_batch)
        self.flush_interval = flush_interval
        self.idle_wait = idle_wait
        self.progress_interval = progress_interval
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}"
        allowed = allowed_modules if allowed_modules is not None else settings.allowed_modules
        if isinstance(allowed, str):  # "app.tasks, billing.*" as in OMNIQ_ALLOWED_MODULES
            allowed = allowed.split(",")
        self.allowed_modules: tuple[str, ...] = tuple(e.strip() for e in allowed if e.strip())
        self.presence = presence
        self.tracer = tracer
        self._workers: dict[WorkerType, Worker] = dict(workers or {})
        if self.default_worker not in self._workers:
            require_worker_extra(self.default_worker)
        self._started_workers: set[WorkerType] = set()
        self._worker_lock: asyncio.Lock | None = None
        self._routes: dict[str, tuple[WorkerType, Callable[..., Any] | None]] = {}
        self._admitted: set[str] = set()
        self._entries: dict[str, Entry] = {}
        self._orphans: set[asyncio.Task[None]] = set()
        self._started_buf: list[ClaimedTask] = []
        self._outcome_buf: list[Outcome] = []
        self._release_buf: list[ClaimedTask] = []
        self._progress: dict[str, Progress] = {}
        self._progress_lock = threading.Lock()  # set_progress comes from any thread
        self._progress_armed = False
        self.stats = PoolStats()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping = False
        self._force = False
        self._running = False
        self._bg: asyncio.Task[PoolStats] | None = None

    # -- public control ------------------------------------------------------------------

    @property
    def in_flight(self) -> int:
        """Claims held right now (queued for a slot or running)."""
        return len(self._entries)

    @property
    def stopping(self) -> bool:
        """True once a stop was requested."""
        return self._stopping

    def worker(self, worker_type: WorkerType | str) -> Worker | None:
        """The worker of ``worker_type`` if the pool has created it."""
        return self._workers.get(WorkerType(worker_type))

    def request_stop(self, *, force: bool = False) -> None:
        """Ask the pool to stop; safe from any thread and from signal handlers.

        The first request starts a graceful shutdown; ``force`` (or any later request
        made with it) cancels running tasks at once and releases them.
        """
        loop = self._loop
        if loop is None or loop.is_closed():
            self._stopping = True
            self._force = self._force or force
            return
        try:
            loop.call_soon_threadsafe(self._on_stop, force)
        except RuntimeError:  # loop closing
            self._stopping = True

    async def stop(self, *, force: bool = False) -> None:
        """Stop (gracefully unless ``force``) and wait until the pool has shut down."""
        self.request_stop(force=force)
        if self._running:
            await self._finished.wait()
        if self._bg is not None:
            bg, self._bg = self._bg, None
            await bg

    async def start(self) -> None:
        """Run the pool in a background task (what ``async with pool`` does)."""
        if self._bg is None:
            self._bg = asyncio.get_running_loop().create_task(self.run())
            await asyncio.sleep(0)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop(force=exc_type is not None)

    # -- main loop -----------------------------------------------------------------------

    async def run(self, *, burst: bool = False) -> PoolStats:
        """Claim and run tasks until stopped; with ``burst``, until the source is empty
        and nothing is in flight. Returns the run's counters."""
        if self._running:
            raise InvalidTaskError("this pool is already running")
        self._running = True
        loop = self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._queued = 0  # claimed tasks waiting for a slot of their worker type
        self._stop_event = asyncio.Event()
        self._force_event = asyncio.Event()
        self._drained = asyncio.Event()
        self._have_items = asyncio.Event()
        self._full = asyncio.Event()
        self._flushed = asyncio.Event()
        self._flushing = False
        self._closed = asyncio.Event()
        self._finished = asyncio.Event()
        self._progress_due = asyncio.Event()
        self._worker_lock = asyncio.Lock()
        if self._stopping:  # a stop requested before run() began
            self._on_stop(self._force)
        flusher = loop.create_task(self._flush_loop())
        renewer = loop.create_task(self._renew_loop())
        helpers: list[asyncio.Task[None]] = []
        if isinstance(self.source, ProgressSource):
            helpers.append(loop.create_task(self._progress_loop(self.source)))
        if isinstance(self.source, CancelSource):
            helpers.append(loop.create_task(self._cancel_loop(self.source)))
        try:
            await self._beat()
            await self._claim_loop(burst)
        except asyncio.CancelledError:
            self._on_stop(True)
            raise
        finally:
            with anyio.CancelScope(shield=True):
                await self._shutdown(flusher, renewer)
                for h in helpers:
                    h.cancel()
                await asyncio.gather(*helpers, return_exceptions=True)
                self._running = False
                self._finished.set()
        return self.stats

    def _on_stop(self, force: bool) -> None:
        self._stopping = True
        self._stop_event.set()
        self._wake.set()
        if force:
            self._force = True
            self._force_event.set()

    async def _claim_loop(self, burst: bool) -> None:
        source = self.source
        wake = self._wake
        while not self._stopping:
            free = self.max_workers - len(self._entries)
            if free <= 0 or self._queued:
                # Full, or claimed tasks wait for a busy thread/process/gevent pool:
                # claiming more would hold tasks other workers could run.
                wake.clear()
                if (
                    self.max_workers - len(self._entries) <= 0 or self._queued
                ) and not self._stopping:
                    await wake.wait()
                continue
            try:
                since = time.monotonic()
                claims = await source.claim(min(free, self.claim_batch))
            except Exception:
                self.stats.source_errors += 1
                log.exception("TaskSource.claim failed; retrying")
                await self._wait_stop(min(1.0, self.idle_wait))
                continue
            if claims:
                # A source may tell when it asked the store (after its own housekeeping).
                self._dispatch(claims, getattr(claims, "since", since))
                # One turn for the new runs to reach their worker's gate, so that the
                # check above sees the ones left waiting for a busy pool.
                await asyncio.sleep(0)
                continue
            if burst and not self._entries:
                if not self._unflushed():
                    return
                # Outcomes still buffered may release dependents: store them, look again.
                await self._wait_flushed()
                continue
            await self._idle(burst)

    async def _idle(self, burst: bool) -> None:
        """Wait for new work, a stop, or (burst) the pool to drain."""
        loop = asyncio.get_running_loop()
        waits: list[asyncio.Future[Any]] = [
            loop.create_task(self.source.wait_for_work(self.idle_wait)),
            loop.create_task(self._stop_event.wait()),
        ]
        if burst:
            self._drained.clear()
            if not self._entries:
                self._drained.set()
            waits.append(loop.create_task(self._drained.wait()))
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()
        # Only the source's wait may need its cleanup awaited; the event waits end on
        # their own (not awaiting them saves loop turns on every wake-up).
        first = waits[0]
        if not first.done():
            await asyncio.gather(first, return_exceptions=True)
        if first.done() and not first.cancelled() and first.exception() is not None:
            self.stats.source_errors += 1
            log.error("TaskSource.wait_for_work failed: %r", first.exception())
            await self._wait_stop(min(1.0, self.idle_wait))

    async def _wait_stop(self, timeout: float) -> None:  # noqa: ASYNC109
        try:
            async with asyncio.timeout(timeout):
                await self._stop_event.wait()
        except TimeoutError:
            pass

    def offer(self, claims: Sequence[ClaimedTask]) -> bool:
        """Run claims the source received outside ``claim()`` (a store handing tasks
        over to this idle worker) at once; False, taking none, if the pool is not
        running, is stopping or has no room for all of them (the source then returns
        them from its next ``claim``). Call on the pool's event loop."""
        if (
            not self._running
            or self._stopping
            or len(self._entries) + len(claims) > self.max_workers
            or self._loop is not asyncio.get_running_loop()
        ):
            return False
        self._dispatch(claims, getattr(claims, "since", None))
        return True

    def _dispatch(self, claims: Sequence[ClaimedTask], since: float | None = None) -> None:
        loop = self._loop
        assert loop is not None
        entries = self._entries
        self.stats.claimed += len(claims)
        run = self._run_entry
        for claim in claims:
            tid = claim.task.id
            if tid in entries:  # the source handed us a task we already hold
                log.warning("task %s was claimed twice; releasing the duplicate claim", tid)
                self._release_buf.append(claim)
                self._have_items.set()
                continue
            entry = Entry(claim, since)
            entries[tid] = entry
            entry.handle = loop.create_task(run(entry))

    # -- one task ------------------------------------------------------------------------

    def _admit(self, task: Task) -> None:
        """The checks made before anything is imported or unpickled (InvalidTaskError)."""
        if task.func_payload is None and task.func in self._admitted:
            return
        self.serializer.check_callable(
            task.func, task.func_payload, allowed_modules=self.allowed_modules
        )
        if task.worker is WorkerType.PROCESS:
            check_process_callable(task.func, task.func_payload)
        if task.func_payload is None:
            if len(self._admitted) >= 4096:  # forged names must not grow it without bound
                self._admitted.clear()
            self._admitted.add(task.func)

    def _late(self, entry: Entry, rate_limit: str) -> bool:
        """A rate-limited task may start only within its rate's guard of the moment the
        store counted its start (which lies after ``since``): the store bounds the starts
        in any window plus the guard, so starts within the guard keep to the rate in any
        window as the tasks see them. A later one goes back to pending unstarted (its
        attempt given back; its counted start still uses up rate budget)."""
        if entry.since is None:
            return False
        if time.monotonic() - entry.since <= _guard(rate_limit):
            return False
        self.stats.late_starts += 1
        return True

    def _route(self, task: Task) -> tuple[WorkerType, Callable[..., Any] | None]:
        hint = task.worker
        if hint is WorkerType.PROCESS:
            return hint, None
        cacheable = task.func_payload is None
        if cacheable and hint is None:
            route = self._routes.get(task.func)
            if route is not None:
                return route
        fn = self.serializer.resolve_callable(
            task.func, task.func_payload, allowed_modules=self.allowed_modules
        )
        wtype: WorkerType | None = hint
        if wtype is None:
            attr = getattr(fn, "__omniq_worker__", None)
            if attr is not None:
                wtype = worker_type_of(attr, f"{task.func}.__omniq_worker__")
            elif is_async_callable(fn):
                wtype = WorkerType.ASYNC
            else:
                wtype = self.default_worker
        if wtype is WorkerType.PROCESS:
            try:
                check_process_callable(task.func, task.func_payload)
            except InvalidTaskError as exc:
                raise _Refused(exc) from None
        route = (wtype, None if wtype is WorkerType.PROCESS else fn)
        if cacheable and hint is None:
            self._routes[task.func] = route
        return route

    async def _get_worker(self, wtype: WorkerType) -> Worker:
        assert self._worker_lock is not None
        async with self._worker_lock:
            worker = self._workers.get(wtype)
            if worker is None:
                worker = self._workers[wtype] = self._make_worker(wtype)
            if wtype not in self._started_workers:
                await worker.start()
                self._started_workers.add(wtype)
            return worker

    def _make_worker(self, wtype: WorkerType) -> Worker:
        cap = self._capacity[wtype]
        if wtype is WorkerType.ASYNC:
            return AsyncWorker(cap)
        if wtype is WorkerType.THREAD:
            return ThreadWorker(cap)
        if wtype is WorkerType.PROCESS:
            return ProcessWorker(
                cap,
                serializer=self.serializer,
                serializer_factory=functools.partial(
                    SerializationManager.from_settings, self._settings
                ),
                allowed_modules=self.allowed_modules,
            )
        from ._gevent import GeventWorker

        return GeventWorker(cap)

    async def _run_entry(self, entry: Entry) -> None:
        claim = entry.claim
        task = claim.task
        wtype: WorkerType | None = None
        started_at: float | None = None
        t0 = 0.0
        try:
            try:
                self._admit(task)
            except InvalidTaskError as exc:
                raise _Refused(exc) from None
            wtype, fn = self._route(task)
            worker = self._workers.get(wtype)
            if worker is None or wtype not in self._started_workers:
                worker = await self._get_worker(wtype)
            gate = worker.gate
            if not gate.try_acquire():
                self._queued += 1
                try:
                    await gate.acquire()
                finally:
                    self._queued -= 1
                    if not self._queued:
                        self._wake.set()
            try:
                if entry.state is DONE:
                    return
                if task.rate_limit is not None and self._late(entry, task.rate_limit):
                    self._settle(entry, None, reason=RELEASE)
                    return
                started_at = now()
                expires = task.expires_at
                if expires is not None and started_at >= expires:
                    self._settle(entry, expired_outcome(claim, wtype, started_at, self.worker_id))
                    return
                entry.state = RUNNING
                ctx = entry.ctx = TaskContext(
                    task.id, task.attempt, task.queue, self.worker_id, wtype, self._on_progress
                )
                set_current(ctx)  # this asyncio task's own context: seen by this run only
                buf = self._started_buf
                buf.append(claim)
                if len(buf) == 1:
                    self._have_items.set()
                timeout = task.timeout if task.timeout is not None else self.default_timeout
                if timeout is not None and timeout <= 0:
                    timeout = None
                t0 = time.perf_counter()
                payload: Payload | None
                tracer = self.tracer
                with tracer.run(task) if tracer is not None else _NO_SCOPE:
                    if fn is None:
                        assert isinstance(worker, ProcessWorker)
                        payload = await worker.call(
                            task.func, task.payload, timeout, task.func_payload, ctx
                        )
                    else:
                        if task.payload is None:
                            args: tuple[Any, ...] = ()
                            kwargs = _EMPTY_KWARGS
                        else:
                            args, kwargs = self.serializer.loads_call(task.payload)
                        if task.rate_limit is not None and entry.since is not None:
                            fn = _gated(fn, entry.since + _guard(task.rate_limit))
                        try:
                            value = await worker.execute(fn, args, kwargs, timeout)
                        except _LateStart:
                            self.stats.late_starts += 1
                            self._settle(entry, None, reason=RELEASE)
                            return
                        payload = None if value is None else self.serializer.dumps(value)
            finally:
                gate.release()
            if entry.state is not DONE:
                self._settle(
                    entry,
                    Outcome(
                        claimed=claim,
                        status=TaskStatus.SUCCESS,
                        value=payload,
                        started_at=started_at,
                        finished_at=now(),
                        duration=time.perf_counter() - t0,
                        attempt=task.attempt,
                        worker_id=self.worker_id,
                        worker_type=wtype,
                    ),
                )
        except asyncio.CancelledError:
            if entry.state is DONE:
                return  # we cancelled it ourselves (release or lost lease): already settled
            if entry.reason is None and started_at is not None:
                # Cancelled from inside the task: report it as cancelled.
                err = TaskCancelledError("task was cancelled")
                self._settle(
                    entry, failure_outcome(self.worker_id, claim, wtype, started_at, t0, err)
                )
                return
            self._settle(entry, None, reason=RELEASE)
            raise
        except _Refused as refused:
            if entry.state is not DONE:
                outcome = failure_outcome(
                    self.worker_id, claim, wtype, started_at, t0, refused.error
                )
                outcome.retryable = False
                self._settle(entry, outcome)
        except Exception as exc:
            if entry.state is not DONE:
                self._settle(
                    entry, failure_outcome(self.worker_id, claim, wtype, started_at, t0, exc)
                )

    def _settle(self, entry: Entry, outcome: Outcome | None, *, reason: str | None = None) -> None:
        """End a claim exactly once: an outcome, a release, or a lost lease."""
        if entry.state is DONE:
            return
        entry.state = DONE
        del self._entries[entry.claim.task.id]
        stats = self.stats
        if outcome is not None:
            if self._run_ended is not None:
                try:
                    self._run_ended(outcome)
                except Exception:
                    log.exception("TaskSource.run_ended failed")
            buf = self._outcome_buf
            buf.append(outcome)
            n = len(buf)
            if n == 1:
                self._have_items.set()
            if n >= self.report_batch or entry.claim.task.max_concurrency is not None:
                # A capped task's slot frees when its outcome is stored: report it now
                # (not after flush_interval), so a worker waiting for the slot gets it.
                self._full.set()
            status = outcome.status
            if status is TaskStatus.SUCCESS:
                stats.succeeded += 1
            elif status is TaskStatus.ERROR:
                stats.failed += 1
                stats.timed_out += outcome.timed_out
                stats.crashed += outcome.crashed
            elif status is TaskStatus.EXPIRED:
                stats.expired += 1
            else:
                stats.cancelled += 1
            if outcome.started_at is not None and status is not TaskStatus.EXPIRED:
                stats.started += 1
        elif reason == RELEASE:
            self._release_buf.append(entry.claim)
            self._have_items.set()
            stats.released += 1
        elif reason == CANCEL:
            stats.cancels += 1
        else:
            stats.leases_lost += 1
        self._wake.set()
        if not self._entries:
            self._drained.set()

    def _cancel(self, entry: Entry, reason: str) -> None:
        """Stop a held task: release it (shutdown) or forget it (lease lost, cancelled)."""
        if entry.state is DONE:
            return
        entry.reason = reason
        if reason != RELEASE and entry.ctx is not None:
            entry.ctx.cancel()
        self._settle(entry, None, reason=reason)
        handle = entry.handle
        if handle is not None and not handle.done():
            handle.cancel()
            self._orphans.add(handle)
            handle.add_done_callback(self._orphans.discard)

    # -- background: flushing, renewing, shutdown -----------------------------------------

    async def _flush_loop(self) -> None:
        have, full = self._have_items, self._full
        while True:
            await have.wait()
            if (
                len(self._outcome_buf) < self.report_batch
                and not self._closed.is_set()
                and self.flush_interval > 0
            ):
                try:
                    async with asyncio.timeout(self.flush_interval):
                        await full.wait()
                except TimeoutError:
                    pass
            have.clear()
            full.clear()
            await self._flush()
            if self._closed.is_set() and not (
                self._outcome_buf or self._started_buf or self._release_buf
            ):
                return

    def _unflushed(self) -> bool:
        return bool(self._outcome_buf or self._started_buf or self._release_buf or self._flushing)

    async def _wait_flushed(self) -> None:
        """Until the flush loop has stored what is buffered (or the pool stops)."""
        self._flushed.clear()
        self._have_items.set()
        self._full.set()
        waits = [
            asyncio.ensure_future(self._flushed.wait()),
            asyncio.ensure_future(self._stop_event.wait()),
        ]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()

    async def _flush(self) -> None:
        self._flushing = True
        try:
            await self._flush_buffers()
        finally:
            self._flushing = False
            self._flushed.set()

    async def _flush_buffers(self) -> None:
        started, self._started_buf = self._started_buf, []
        outcomes, self._outcome_buf = self._outcome_buf, []
        releases, self._release_buf = self._release_buf, []
        if started:
            await self._deliver("OutcomeSink.started", self.sink.started, started)
        if outcomes:
            await self._deliver("OutcomeSink.report", self.sink.report, outcomes)
        if releases:
            await self._deliver("TaskSource.release", self.source.release, releases)

    async def _deliver(self, what: str, call: Callable[[Any], Any], batch: list[Any]) -> None:
        for attempt in range(3):
            try:
                await call(batch)
                return
            except Exception as exc:
                self.stats.sink_errors += 1
                if attempt == 2:
                    log.warning(
                        "%s failed for %d item(s); their leases will expire and the tasks "
                        "will be claimed again: %s",
                        what,
                        len(batch),
                        exc,
                        # an unreachable store logs its outage itself: no traceback here
                        exc_info=not isinstance(exc, BackendUnavailableError),
                    )
                    return
                await asyncio.sleep(0.05 * 4**attempt)

    async def _renew_loop(self) -> None:
        while True:
            try:
                async with asyncio.timeout(self.renew_interval):
                    await self._closed.wait()
                return
            except TimeoutError:
                pass
            claims = [e.claim for e in self._entries.values()]
            if claims:
                await self._renew(claims)
            await self._beat()

    async def _renew(self, claims: list[ClaimedTask]) -> None:
        try:
            lost = await self.source.renew(claims)
        except BackendUnavailableError as exc:  # the store logs its outage itself
            self.stats.source_errors += 1
            log.debug("TaskSource.renew failed for %d lease(s): %s", len(claims), exc)
            return
        except Exception:
            self.stats.source_errors += 1
            log.exception("TaskSource.renew failed for %d lease(s)", len(claims))
            return
        for tid in lost:
            entry = self._entries.get(tid)
            if entry is not None:
                log.warning("lease of task %s was lost; abandoning it", tid)
                self._cancel(entry, LOST)

    async def _beat(self) -> None:
        """Refresh this worker's registry entry with the ids of the tasks running now."""
        presence = self.presence
        if presence is None:
            return
        running = [tid for tid, e in self._entries.items() if e.state is RUNNING]
        try:
            await presence.beat(running)
        except BackendUnavailableError as exc:  # the store logs its outage itself
            log.debug("refreshing the worker registry entry failed: %s", exc)
        except Exception:
            log.warning("refreshing the worker registry entry failed", exc_info=True)

    # -- progress and cancel notifications ------------------------------------------------

    def _on_progress(self, ctx: TaskContext, progress: Progress) -> None:
        """A run's ``set_progress`` (any thread): keep the latest, arm the writer."""
        with self._progress_lock:
            self._progress[ctx.task_id] = progress
            armed, self._progress_armed = self._progress_armed, True
        if not armed:
            loop = self._loop
            if loop is None:
                return
            try:
                running = asyncio.get_running_loop()
            except RuntimeError:
                running = None
            if running is loop:
                self._progress_due.set()
            else:
                with contextlib.suppress(RuntimeError):  # loop closed: nobody to tell
                    loop.call_soon_threadsafe(self._progress_due.set)

    async def _progress_loop(self, source: ProgressSource) -> None:
        """Write recorded progress through the source, at most every
        ``progress_interval`` seconds (a task whose lease is lost there is abandoned)."""
        due = self._progress_due
        while True:
            await due.wait()
            due.clear()
            with self._progress_lock:
                self._progress_armed = False
                latest, self._progress = self._progress, {}
            pairs = []
            for tid, progress in latest.items():
                entry = self._entries.get(tid)
                if entry is not None and entry.state is RUNNING:
                    pairs.append((entry.claim, progress))
            if pairs:
                try:
                    lost = await source.set_progress(pairs)
                except Exception:
                    self.stats.source_errors += 1
                    log.exception("recording the progress of %d task(s) failed", len(pairs))
                    lost = set()
                for tid in lost:
                    entry = self._entries.get(tid)
                    if entry is not None:
                        log.warning("lease of task %s was lost; abandoning it", tid)
                        self._cancel(entry, LOST)
            await self._wait_stop(self.progress_interval)

    def _on_cancelled(self, task_ids: list[str]) -> None:
        """``cancel`` ended these tasks: stop the runs (the canceller stored the result)."""
        for tid in task_ids:
            entry = self._entries.get(tid)
            if entry is not None:
                log.info("task %s was cancelled while held by this worker; stopping it", tid)
                self._cancel(entry, CANCEL)

    async def _cancel_loop(self, source: CancelSource) -> None:
        entries = self._entries
        while True:
            try:
                await source.watch_cancels(entries.keys, self._on_cancelled)
                return
            except Exception:
                self.stats.source_errors += 1
                log.exception("watching for cancels failed; retrying")
                await self._wait_stop(1.0)

    async def _shutdown(self, flusher: asyncio.Task[None], renewer: asyncio.Task[None]) -> None:
        # Tasks still waiting for a slot go back at once; running ones get the grace.
        for entry in [e for e in self._entries.values() if e.state is QUEUED]:
            self._cancel(entry, RELEASE)
        if self._entries and not self._force:
            self._drained.clear()
            if self._entries:
                await wait_first(self._drained, self._force_event, self.shutdown_grace)
        cut_off = bool(self._entries)
        for entry in list(self._entries.values()):
            self._cancel(entry, RELEASE)
        if self._orphans:
            await asyncio.wait(list(self._orphans), timeout=10.0)
        self._closed.set()
        self._have_items.set()
        await flusher
        renewer.cancel()
        await asyncio.gather(renewer, return_exceptions=True)
        if self.presence is not None:
            try:
                await self.presence.leave()
            except Exception:
                log.warning("removing the worker registry entry failed", exc_info=True)
        for wtype in list(self._started_workers):
            try:
                await self._workers[wtype].stop(force=cut_off or self._force)
            except Exception:
                log.exception("stopping the %s worker failed", wtype.value)
        self._started_workers.clear()
