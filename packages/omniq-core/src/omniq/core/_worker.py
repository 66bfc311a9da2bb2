"""Running worker pools for OmniQ: in the foreground (``run_worker``) or in the
background for the duration of a context (``worker()``)."""

from __future__ import annotations

import asyncio
import threading
from types import TracebackType
from typing import Any, Protocol

import anyio

from omniq.models import InvalidStateError
from omniq.queue import AsyncTaskQueue
from omniq.storage import WorkerRegistry
from omniq.workers import AsyncWorkerPool, PoolStats, install_signal_handlers

from ._metrics import METRIC_OPTIONS, start_metrics
from ._presence import RegistryPresence
from ._session import Session, SessionRunner

__all__ = ["WorkerHandle", "make_pool", "run_pool"]


class _Closeable(Protocol):
    async def close(self) -> None: ...


def make_pool(
    queue: AsyncTaskQueue,
    opts: dict[str, Any],
    *,
    burst: bool = False,
    registry: WorkerRegistry | None = None,
) -> tuple[AsyncWorkerPool, _Closeable]:
    """An AsyncWorkerPool over ``queue``'s task source/outcome sink, and that source
    (to close when the pool ends: tasks handed over but never run go back). With a
    ``registry`` the pool keeps its entry there, unless the ``worker_registry=False``
    option turns that off. The ``metrics*`` options turn on Prometheus metrics
    (``omniq.core.metrics_registry``), served on ``metrics_port`` when given; the queue's
    tracer (the ``tracing`` setting) wraps each run in a span."""
    opts = dict(opts)
    metric_opts = {k: opts.pop(k) for k in METRIC_OPTIONS if k in opts}
    registered = bool(opts.pop("worker_registry", True))
    queues = opts.pop("queues", None)
    concurrency = opts.pop("concurrency", None)
    worker_type = opts.pop("worker_type", None)
    worker_id = opts.pop("worker_id", None)
    lease = opts.pop("lease_seconds", None)
    source = queue.worker_source(queues, worker_id=worker_id, lease=lease)
    source.burst = burst
    source.handover = True  # closed by run_pool / WorkerHandle when the pool ends
    pool = AsyncWorkerPool(
        source,
        source,
        settings=queue.settings,
        serializer=queue.serializer,
        max_workers=concurrency,
        default_worker=worker_type,
        worker_id=source.worker_id,
        lease_seconds=source.lease,
        tracer=queue.tracer,
        **opts,
    )
    source.offer = pool.offer
    if registry is not None and registered:
        pool.presence = RegistryPresence(
            registry,
            worker_id=source.worker_id,
            queues=source.queues,
            worker_type=pool.default_worker,
            concurrency=pool.max_workers,
            lease=source.lease,
        )
    metrics = start_metrics(queue, source, registry, metric_opts) if metric_opts else None
    return pool, (metrics if metrics is not None else source)


async def run_pool(
    queue: AsyncTaskQueue,
    opts: dict[str, Any],
    *,
    burst: bool,
    registry: WorkerRegistry | None = None,
) -> PoolStats:
    """Run one pool to completion, then flush its events."""
    pool, source = make_pool(queue, opts, burst=burst, registry=registry)
    try:
        return await pool.run(burst=burst)
    finally:
        await _close_source(source)
        if queue.events is not None:
            await queue.events.flush()


async def _close_source(source: _Closeable) -> None:
    """End the handovers of a pool's source (tasks handed over, never run, go back)."""
    with anyio.CancelScope(shield=True):
        await source.close()


class WorkerHandle:
    """A background worker: ``async with`` or ``with`` starts it, leaving stops it
    gracefully (running tasks finish within SHUTDOWN_GRACE)."""

    def __init__(self, oq: SessionRunner, opts: dict[str, Any], *, burst: bool = False) -> None:
        self._oq = oq
        self._opts = opts
        self._burst = burst
        self._pool: AsyncWorkerPool | None = None
        self._source: _Closeable | None = None
        self._task: asyncio.Task[PoolStats] | None = None
        self._session: Session | None = None
        self.stats: PoolStats | None = None

    async def start_on_home(self, session: Session) -> None:
        if self._task is not None:
            raise InvalidStateError("this worker is already running")
        self._session = session
        self._pool, self._source = make_pool(
            session.queue, self._opts, burst=self._burst, registry=session.task_backend.workers
        )
        self._task = asyncio.get_running_loop().create_task(self._pool.run(burst=self._burst))
        session.workers.add(self)
        await asyncio.sleep(0)

    async def stop_on_home(self, force: bool = False) -> None:
        pool, source, task = self._pool, self._source, self._task
        if pool is None or source is None or task is None:
            return
        self._pool = self._source = self._task = None
        await pool.stop(force=force)
        try:
            self.stats = await task
        finally:
            await _close_source(source)
            if self._session is not None:
                self._session.workers.discard(self)
                if self._session.logger is not None:
                    await self._session.logger.flush()

    async def join_on_home(self) -> PoolStats:
        task = self._task
        if task is None:
            raise InvalidStateError("this worker is not running")
        try:
            stats = await task
        finally:
            await self.stop_on_home()
        self.stats = stats
        return stats

    def run_sync(self, *, handle_signals: bool = True) -> PoolStats:
        """Start, then block until the pool ends (burst drained, or stopped by SIGTERM/
        SIGINT when called from the main thread)."""
        self.start_sync()
        restore = None
        if handle_signals and threading.current_thread() is threading.main_thread():
            pool = self._pool
            if pool is not None:
                restore = install_signal_handlers(pool)
        try:
            return self._oq._call_sync(_join, self)
        except BaseException:
            self.stop_sync(force=True)
            raise
        finally:
            if restore is not None:
                restore()

    @property
    def pool(self) -> AsyncWorkerPool | None:
        return self._pool

    async def start(self) -> WorkerHandle:
        await self._oq._call(_start, self)
        return self

    async def stop(self, *, force: bool = False) -> None:
        await self._oq._call(_stop, self, force)

    def start_sync(self) -> WorkerHandle:
        self._oq._call_sync(_start, self)
        return self

    def stop_sync(self, *, force: bool = False) -> None:
        self._oq._call_sync(_stop, self, force)

    async def __aenter__(self) -> WorkerHandle:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop(force=exc_type is not None)

    def __enter__(self) -> WorkerHandle:
        return self.start_sync()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop_sync(force=exc_type is not None)


async def _start(session: Session, handle: WorkerHandle) -> None:
    await handle.start_on_home(session)


async def _join(session: Session, handle: WorkerHandle) -> PoolStats:
    return await handle.join_on_home()


async def _stop(session: Session, handle: WorkerHandle, force: bool) -> None:
    await handle.stop_on_home(force)
