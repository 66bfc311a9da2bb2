"""WorkerPool: the blocking face of AsyncWorkerPool (an event loop in a helper thread)."""

from __future__ import annotations

import functools
import signal
from collections.abc import Iterable
from concurrent.futures import Future
from types import TracebackType
from typing import Any, Self

from omniq.events.bridge import ThreadPortal, wait_interruptibly
from omniq.models import InvalidStateError

from ._pool import AsyncWorkerPool
from ._signals import install_signal_handlers
from ._types import OutcomeSink, PoolStats, TaskSource

__all__ = ["WorkerPool"]


class WorkerPool:
    """Blocking wrapper of :class:`AsyncWorkerPool` with the same options and methods.

    The async pool runs behind a ``ThreadPortal`` (an asyncio loop in a helper thread),
    so this works from plain scripts, threads and code already running an event loop.
    The task source and outcome sink are the async protocols; they run on that loop.
    ``with WorkerPool(...) as pool:`` runs it in the background until the block ends.
    """

    def __init__(self, source: TaskSource, sink: OutcomeSink, **options: Any) -> None:
        self.async_pool = AsyncWorkerPool(source, sink, **options)
        self._portal: ThreadPortal | None = None
        self._future: Future[PoolStats] | None = None

    @property
    def stats(self) -> PoolStats:
        """Counters of the current or last run."""
        return self.async_pool.stats

    @property
    def in_flight(self) -> int:
        """Claims held right now."""
        return self.async_pool.in_flight

    def run(
        self,
        *,
        burst: bool = False,
        handle_signals: bool = False,
        signals: Iterable[signal.Signals] = (signal.SIGTERM, signal.SIGINT),
    ) -> PoolStats:
        """Run until stopped (or, with ``burst``, until the source is empty); blocks.

        ``handle_signals`` routes SIGTERM/SIGINT to a graceful stop (a second signal
        forces it) for the duration of the call; main thread only.
        """
        restore = install_signal_handlers(self, signals) if handle_signals else None
        portal = ThreadPortal()
        try:
            return portal.call(functools.partial(self.async_pool.run, burst=burst))
        except BaseException:
            portal.close(cancel_remaining=True)
            raise
        finally:
            portal.close()
            if restore is not None:
                restore()

    def start(self, *, burst: bool = False) -> None:
        """Run the pool in the background; ``stop()`` ends it."""
        if self._future is not None:
            raise InvalidStateError("this pool is already running")
        self._portal = ThreadPortal()
        self._future = self._portal.portal.start_task_soon(
            functools.partial(self.async_pool.run, burst=burst)
        )

    def request_stop(self, *, force: bool = False) -> None:
        """Ask the pool to stop without waiting; safe from any thread or signal handler."""
        self.async_pool.request_stop(force=force)

    def wait(self, timeout: float | None = None) -> PoolStats:
        """Block until a background run ends (``burst`` runs end by themselves)."""
        if self._future is None:
            return self.stats
        try:
            return wait_interruptibly(self._future, timeout)
        finally:
            if self._future.done():
                self._close()

    def stop(self, *, force: bool = False, timeout: float | None = None) -> PoolStats:
        """Stop a background run (gracefully unless ``force``) and wait for it."""
        self.request_stop(force=force)
        return self.wait(timeout)

    def _close(self) -> None:
        portal, self._portal, self._future = self._portal, None, None
        if portal is not None:
            portal.close()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop(force=exc_type is not None)
