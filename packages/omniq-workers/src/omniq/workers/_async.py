"""AsyncWorker: coroutine functions as tasks on the running event loop."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from collections.abc import Callable
from typing import Any

from omniq.models import WorkerType, settings

from ._base import Deadlines, Worker, timeout_error
from ._thread import ThreadWorker

__all__ = ["AsyncWorker", "is_async_callable"]


def is_async_callable(fn: Any) -> bool:
    """True for coroutine functions (also behind ``functools.partial``) and objects whose
    ``__call__`` is one."""
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        getattr(fn, "__call__", None)  # noqa: B004 - callable instances
    )


class AsyncWorker(Worker):
    """Runs coroutine functions on the event loop, at most ``capacity`` at once.

    Timeout cancels the coroutine (it sees CancelledError at its next await). A plain
    function given to it runs in a private ThreadWorker of the same capacity (with the
    thread timeout semantics); a function returning an awaitable has it awaited here.
    """

    worker_type = WorkerType.ASYNC

    def __init__(self, capacity: int = settings.MAX_WORKERS) -> None:
        super().__init__(capacity)
        self._threads: ThreadWorker | None = None
        self._is_async: dict[Any, bool] = {}
        self._deadlines: Deadlines | None = None

    async def execute(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        timeout: float | None,  # noqa: ASYNC109
    ) -> Any:
        try:
            is_async = self._is_async[fn]
        except (KeyError, TypeError):
            is_async = is_async_callable(fn)
            if len(self._is_async) < 4096:
                with contextlib.suppress(TypeError):  # unhashable callables are not cached
                    self._is_async[fn] = is_async
        if not is_async:
            threads = self._threads
            if threads is None:
                threads = self._threads = ThreadWorker(self.capacity, name="omniq-async-sync")
                await threads.start()
            threads.gate.hold()  # our own slot already bounds it
            try:
                return await threads.execute(fn, args, kwargs, timeout)
            finally:
                threads.gate.release()
        if timeout is None:
            return await fn(*args, **kwargs)
        task = asyncio.current_task()
        deadlines = self._deadlines
        if task is None:  # not inside a task (another event loop library): the stdlib way
            cm = asyncio.timeout(timeout)
            try:
                async with cm:
                    return await fn(*args, **kwargs)
            except TimeoutError:
                if cm.expired():
                    raise timeout_error(timeout) from None
                raise
        if deadlines is None or deadlines._loop is not task.get_loop():
            deadlines = self._deadlines = Deadlines(task.get_loop())
        cancelling = task.cancelling()
        bucket, key, d = deadlines.add(timeout, task)
        try:
            return await fn(*args, **kwargs)
        except asyncio.CancelledError:
            # Ours (like asyncio.timeout): the deadline fired and nobody else cancelled.
            if d.fired and task.uncancel() <= cancelling:
                raise timeout_error(timeout) from None
            raise
        finally:
            bucket.pop(key, None)

    async def stop(self, *, force: bool = False, timeout: float = 5.0) -> None:  # noqa: ASYNC109
        if self._threads is not None:
            await self._threads.stop(force=force, timeout=timeout)
            self._threads = None
        await super().stop(force=force, timeout=timeout)
