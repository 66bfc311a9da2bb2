"""Running worker pools for OmniQ: in the foreground (``run_worker``) or in the
background for the duration of a context (``worker()``)."""

from __future__ import annotations

import asyncio
from types import TracebackType
from typing import TYPE_CHECKING, Any

import anyio

from omniq.models import OmniQError
from omniq.queue import AsyncTaskQueue
from omniq.queue._source import QueueWorkerSource
from omniq.workers import AsyncWorkerPool, PoolStats

if TYPE_CHECKING:
    from ._facade import OmniQ, _Open

__all__ = ["WorkerHandle", "make_pool", "run_pool"]


def make_pool(
    queue: AsyncTaskQueue, opts: dict[str, Any], *, burst: bool = False
) -> AsyncWorkerPool:
    """An AsyncWorkerPool over ``queue``'s task source/outcome sink."""
    opts = dict(opts)
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
        **opts,
    )
    source.offer = pool.offer
    return pool


async def run_pool(queue: AsyncTaskQueue, opts: dict[str, Any], *, burst: bool) -> PoolStats:
    """Run one pool to completion, then flush its events."""
    pool = make_pool(queue, opts, burst=burst)
    try:
        return await pool.run(burst=burst)
    finally:
        await _close_source(pool)
        if queue.events is not None:
            await queue.events.flush()


async def _close_source(pool: AsyncWorkerPool) -> None:
    """End the handovers of the pool's source (tasks handed over, never run, go back)."""
    source = pool.source
    if isinstance(source, QueueWorkerSource):
        with anyio.CancelScope(shield=True):
            await source.close()


class WorkerHandle:
    """A background worker: ``async with`` or ``with`` starts it, leaving stops it
    gracefully (running tasks finish within SHUTDOWN_GRACE)."""

    def __init__(self, oq: OmniQ, opts: dict[str, Any], *, burst: bool = False) -> None:
        self._oq = oq
        self._opts = opts
        self._burst = burst
        self._pool: AsyncWorkerPool | None = None
        self._task: asyncio.Task[PoolStats] | None = None
        self._state: _Open | None = None
        self.stats: PoolStats | None = None

    async def start_on_home(self, state: _Open) -> None:
        if self._task is not None:
            raise OmniQError("this worker is already running")
        self._state = state
        self._pool = make_pool(state.queue, self._opts, burst=self._burst)
        self._task = asyncio.get_running_loop().create_task(self._pool.run(burst=self._burst))
        state.workers.add(self)
        await asyncio.sleep(0)

    async def stop_on_home(self, force: bool = False) -> None:
        pool, task = self._pool, self._task
        if pool is None or task is None:
            return
        self._pool = self._task = None
        await pool.stop(force=force)
        try:
            self.stats = await task
        finally:
            await _close_source(pool)
            if self._state is not None:
                self._state.workers.discard(self)
                if self._state.logger is not None:
                    await self._state.logger.flush()

    async def join_on_home(self) -> PoolStats:
        task = self._task
        if task is None:
            raise OmniQError("this worker is not running")
        try:
            stats = await task
        finally:
            await self.stop_on_home()
        self.stats = stats
        return stats

    def run_sync(self, *, handle_signals: bool = True) -> PoolStats:
        """Start, then block until the pool ends (burst drained, or stopped by SIGTERM/
        SIGINT when called from the main thread)."""
        import threading

        from omniq.workers import install_signal_handlers

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


async def _start(state: _Open, handle: WorkerHandle) -> None:
    await handle.start_on_home(state)


async def _join(state: _Open, handle: WorkerHandle) -> PoolStats:
    return await handle.join_on_home()


async def _stop(state: _Open, handle: WorkerHandle, force: bool) -> None:
    await handle.stop_on_home(force)
