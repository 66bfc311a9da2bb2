"""GeventWorker: functions as greenlets in a gevent pool (``omniq-workers[gevent]``)."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import threading
from collections.abc import Callable
from typing import Any

from omniq.models import MissingExtraError, TaskCancelledError, WorkerType, settings

from ._async import is_async_callable
from ._base import Gate, Worker, timeout_error
from ._thread import LoopInbox, wait_event

__all__ = ["GeventWorker", "gevent_patched", "require_worker_extra"]

_GEVENT_EXTRA = "omniq-workers[gevent]"


def require_worker_extra(worker_type: WorkerType | str) -> None:
    """Raise MissingExtraError if ``worker_type`` needs an extra that is not installed.

    Only ``gevent`` has one (``omniq-workers[gevent]``). A pool calls this for its default
    worker type before it claims anything, so a missing extra stops the worker at start
    instead of failing every task it claims.
    """
    if WorkerType(worker_type) is not WorkerType.GEVENT:
        return
    try:
        import gevent.pool  # type: ignore[import-untyped,unused-ignore]  # noqa: F401
    except ImportError as exc:
        raise MissingExtraError(
            f"the gevent worker type needs gevent, which is not installed: "
            f"pip install '{_GEVENT_EXTRA}' (the omniq distribution installs it)"
        ) from exc


def gevent_patched() -> bool:
    """True if this process was monkey-patched by gevent (``gevent.monkey.patch_all()``)."""
    try:
        from gevent import monkey  # type: ignore[import-untyped,unused-ignore]
    except ImportError:
        return False
    return bool(monkey.is_module_patched("socket") and monkey.is_module_patched("select"))


class _GJob:
    __slots__ = ("abandoned", "args", "context", "fn", "fut", "gate", "greenlet", "inbox", "kwargs")

    def __init__(  # noqa: PLR0917
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        fut: asyncio.Future[Any],
        gate: Gate,
        inbox: LoopInbox,
    ) -> None:
        self.fn = fn
        self.args = args
        self.kwargs = kwargs
        self.fut = fut
        self.gate = gate
        self.inbox = inbox
        self.abandoned = False
        self.greenlet: Any = None
        self.context = contextvars.copy_context()  # current_task() inside the greenlet

    def finish(self, ok: bool, value: Any) -> None:  # on the event loop thread
        if self.abandoned:
            self.gate.release()
            return
        if not self.fut.done():
            if ok:
                self.fut.set_result(value)
            else:
                self.fut.set_exception(value)

    def run(self) -> None:  # in a greenlet
        import gevent

        try:
            value = self.context.run(self.fn, *self.args, **self.kwargs)
        except gevent.GreenletExit:
            ok, value = False, TaskCancelledError("greenlet was killed")
        except BaseException as exc:
            ok, value = False, exc
        else:
            ok = True
        with contextlib.suppress(RuntimeError):  # loop closed: nobody waits for this any more
            self.inbox.put(self, ok, value)


class GeventWorker(Worker):
    """Runs functions as greenlets, at most ``capacity`` at once.

    In a gevent-patched process (``gevent.monkey.patch_all()`` before anything else is
    imported, as ``omniq worker --worker-type gevent`` does) the greenlets share the
    event loop's thread: asyncio's selector is gevent's, so blocking I/O in any greenlet
    yields to the others and to the pool. In an unpatched process the gevent hub runs in
    one dedicated thread: greenlets are concurrent only where they use gevent APIs
    (``gevent.sleep``, gevent sockets); a plain blocking call stalls the whole hub.

    Timeout kills the greenlet (GreenletExit at its next cooperative switch); the caller
    gets TaskTimeoutError at the deadline and a greenlet that never yields keeps its slot
    until it returns. Coroutine functions are awaited on the event loop instead.
    """

    worker_type = WorkerType.GEVENT

    def __init__(self, capacity: int = settings.GEVENT_WORKERS) -> None:
        super().__init__(capacity)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._inbox: LoopInbox | None = None
        self._hub: Any = None
        self._group: Any = None
        self._stop_event: Any = None
        self._thread: threading.Thread | None = None
        self._thread_done: asyncio.Event | None = None
        self._keepalive: Any = None
        self.native = False
        """True when greenlets run in the event loop's own thread (patched process)."""

    async def start(self) -> None:
        if self._started:
            return
        require_worker_extra(WorkerType.GEVENT)
        import gevent.pool  # type: ignore[import-untyped,unused-ignore]

        loop = self._loop = asyncio.get_running_loop()
        self._inbox = LoopInbox(loop)
        selector = getattr(loop, "_selector", None)
        self.native = type(selector).__module__.startswith("gevent")
        if self.native:
            self._hub = gevent.get_hub()
            self._group = gevent.pool.Group()
        else:
            ready = threading.Event()
            done = self._thread_done = asyncio.Event()
            self._thread = threading.Thread(
                target=self._hub_main,
                args=(ready, loop, done),
                name="omniq-gevent-hub",
                daemon=True,
            )
            self._thread.start()
            ready.wait()
        await super().start()

    def _hub_main(
        self, ready: threading.Event, loop: asyncio.AbstractEventLoop, done: asyncio.Event
    ) -> None:
        import gevent
        import gevent.event  # type: ignore[import-untyped,unused-ignore]
        import gevent.pool

        hub = gevent.get_hub()
        self._hub = hub
        self._group = gevent.pool.Group()
        stop = self._stop_event = gevent.event.Event()
        # A referenced async watcher keeps the hub's loop alive while idle (otherwise
        # waiting would raise LoopExit) and lets another thread wake it to stop.
        self._keepalive = hub.loop.async_()
        self._keepalive.start(stop.set)
        ready.set()
        try:
            stop.wait()
            self._group.kill(block=True, timeout=5.0)
        finally:
            self._keepalive.stop()
            self._keepalive.close()
            hub.destroy(destroy_loop=True)
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(done.set)

    def _spawn(self, job: _GJob) -> None:  # in the hub's thread
        if job.abandoned:
            job.inbox.put(job, False, None)
            return
        job.greenlet = self._group.spawn(job.run)

    @staticmethod
    def _kill(job: _GJob) -> None:  # in the hub's thread
        g = job.greenlet
        if g is not None and not g.dead:
            g.kill(block=False)

    def _in_hub(self, fn: Callable[..., Any], *args: Any) -> None:
        if self.native:
            fn(*args)
        else:
            self._hub.loop.run_callback_threadsafe(fn, *args)

    async def execute(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        timeout: float | None,  # noqa: ASYNC109
    ) -> Any:
        if is_async_callable(fn):
            return await _await_coroutine(fn, args, kwargs, timeout)
        loop = self._loop
        assert loop is not None, "GeventWorker.start() was not awaited"
        inbox = self._inbox
        assert inbox is not None
        job = _GJob(fn, args, kwargs, loop.create_future(), self.gate, inbox)
        self._in_hub(self._spawn, job)
        fut = job.fut
        try:
            if timeout is None:
                return await fut
            try:
                async with asyncio.timeout(timeout):
                    return await fut
            except TimeoutError:
                if fut.cancelled():
                    raise timeout_error(timeout) from None
                raise
        finally:
            if fut.cancelled() and not job.abandoned:
                job.abandoned = True  # its slot is held until the greenlet really ends
                self.gate.hold()
                self._in_hub(self._kill, job)

    @property
    def greenlets(self) -> int:
        """Greenlets alive in this worker's pool."""
        return len(self._group) if self._group is not None else 0

    async def stop(self, *, force: bool = False, timeout: float = 5.0) -> None:  # noqa: ASYNC109
        if not self._started:
            return
        if self.native:
            self._group.kill(block=True, timeout=timeout)
        elif self._thread is not None:
            self._keepalive.send()
            await wait_event(self._thread_done, timeout + 1.0)
            self._thread.join(1.0)
            self._thread = None
        self._group = None
        self._hub = None
        await super().stop(force=force, timeout=timeout)


async def _await_coroutine(
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    timeout: float | None,  # noqa: ASYNC109
) -> Any:
    if timeout is None:
        return await fn(*args, **kwargs)
    cm = asyncio.timeout(timeout)
    try:
        async with cm:
            return await fn(*args, **kwargs)
    except TimeoutError:
        if cm.expired():
            raise timeout_error(timeout) from None
        raise
