"""ThreadWorker: blocking functions in a bounded pool of long-lived threads."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import inspect
import logging
import queue
import threading
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

from omniq.models import WorkerType, settings

from ._base import Gate, Worker, timeout_error

__all__ = ["LoopInbox", "ThreadWorker"]

log = logging.getLogger("omniq.workers")

_STOP = None


class _Job:
    """One call handed to a thread; finished on the event loop thread."""

    __slots__ = ("abandoned", "args", "context", "fn", "fut", "gate", "kwargs")

    def __init__(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        fut: asyncio.Future[Any],
        gate: Gate,
    ) -> None:
        self.fn = fn
        self.args = args
        self.kwargs = kwargs
        self.fut = fut
        self.gate = gate
        self.abandoned = False
        # The caller's context variables (``current_task()`` among them) go with the call.
        self.context = contextvars.copy_context()

    def finish(self, ok: bool, value: Any) -> None:
        if self.abandoned:  # the caller gave up at its deadline; free the lent slot now
            self.gate.release()
            return
        fut = self.fut
        if not fut.done():
            if ok:
                fut.set_result(value)
            else:
                fut.set_exception(value)


class _Finishable(Protocol):
    def finish(self, ok: bool, value: Any) -> None: ...


class LoopInbox:
    """Outcomes handed to an event loop from other threads (or greenlets), finished on the
    loop in batches: the loop is woken (``call_soon_threadsafe``, a write to its wake-up
    pipe) once for all the outcomes that arrive before it runs, not once per task.

    ``put`` may be called from any thread. A drain clears ``scheduled`` before it takes
    items, so an item put while ``scheduled`` reads True is taken by a drain still to come.
    """

    __slots__ = ("_items", "_loop", "scheduled")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._items: deque[tuple[_Finishable, bool, Any]] = deque()
        self.scheduled = False

    def put(self, job: _Finishable, ok: bool, value: Any) -> None:
        """Queue ``job.finish(ok, value)`` for the loop (RuntimeError once it is closed)."""
        self._items.append((job, ok, value))
        if not self.scheduled:
            self.scheduled = True
            self._loop.call_soon_threadsafe(self._drain)

    def _drain(self) -> None:
        self.scheduled = False
        items = self._items
        while items:
            job, ok, value = items.popleft()
            job.finish(ok, value)


def _call(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], local: Any) -> Any:
    value = fn(*args, **kwargs)
    if inspect.isawaitable(value):  # an async function: run it on this thread's own loop
        runner: asyncio.Runner | None = getattr(local, "runner", None)
        if runner is None:
            runner = local.runner = asyncio.Runner()
        value = runner.run(_await(value))
    return value


async def _await(aw: Any) -> Any:
    return await aw


class ThreadWorker(Worker):
    """Runs blocking functions in at most ``capacity`` threads, started on demand.

    Async functions given to it run to completion in the thread on that thread's own
    event loop. Timeouts: a thread cannot be killed, so at the deadline the caller gets
    TaskTimeoutError and the thread's late result is discarded; its slot stays taken
    until the function really returns, so the bound on running threads always holds.
    """

    worker_type = WorkerType.THREAD

    def __init__(
        self, capacity: int = settings.THREAD_WORKERS, *, name: str = "omniq-thread"
    ) -> None:
        super().__init__(capacity)
        self._name = name
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._inbox: LoopInbox | None = None
        self._exited: asyncio.Event | None = None
        self._alive = 0

    async def start(self) -> None:
        if self._started:
            return
        self._loop = asyncio.get_running_loop()
        self._inbox = LoopInbox(self._loop)
        self._exited = asyncio.Event()
        await super().start()

    def _spawn(self) -> None:
        t = threading.Thread(
            target=self._main, name=f"{self._name}-{len(self._threads)}", daemon=True
        )
        self._alive += 1
        t.start()
        self._threads.append(t)

    def _main(self) -> None:
        local = threading.local()
        get = self._queue.get
        loop = self._loop
        inbox = self._inbox
        assert loop is not None and inbox is not None
        put = inbox.put
        try:
            while True:
                job = get()
                if job is None:
                    return
                try:
                    value = job.context.run(_call, job.fn, job.args, job.kwargs, local)
                except BaseException as exc:
                    put(job, False, exc)
                else:
                    put(job, True, value)
                del job
        except RuntimeError:  # the event loop closed under us: nobody is waiting any more
            return
        finally:
            runner = getattr(local, "runner", None)
            if runner is not None:
                runner.close()
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._on_exit)

    def _on_exit(self) -> None:
        self._alive -= 1
        if self._alive <= 0 and self._exited is not None:
            self._exited.set()

    def submit(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> _Job:
        """Queue a call for a thread (the caller holds a slot); returns its job."""
        loop = self._loop
        assert loop is not None, "ThreadWorker.start() was not awaited"
        if len(self._threads) < self.gate.active and len(self._threads) < self.gate.limit + 64:
            self._spawn()
        job = _Job(fn, args, kwargs, loop.create_future(), self.gate)
        self._queue.put(job)
        return job

    async def execute(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        timeout: float | None,  # noqa: ASYNC109
    ) -> Any:
        job = self.submit(fn, args, kwargs)
        fut = job.fut
        try:
            if timeout is None:
                return await fut
            try:
                async with asyncio.timeout(timeout):
                    return await fut
            except TimeoutError:
                if fut.cancelled():  # our deadline, not a TimeoutError raised by the task
                    raise timeout_error(timeout) from None
                raise
        finally:
            if fut.cancelled() and not job.abandoned:
                # Timed out or cancelled while the thread still runs: lend it the slot.
                job.abandoned = True
                self.gate.hold()

    async def stop(self, *, force: bool = False, timeout: float = 5.0) -> None:  # noqa: ASYNC109
        if not self._started:
            return
        for _ in self._threads:
            self._queue.put(_STOP)
        exited = await wait_event(self._exited, timeout) if self._alive > 0 else True
        stuck = []
        for t in self._threads:
            t.join(1.0 if exited else 0.0)
            if t.is_alive():
                stuck.append(t.name)
        if stuck:
            log.warning(
                "%d worker thread(s) still running a task after %.1f s (threads cannot be "
                "killed; they are daemon threads and end with their task): %s",
                len(stuck),
                timeout,
                ", ".join(stuck),
            )
        self._threads = []
        self._queue = queue.SimpleQueue()
        await super().stop(force=force, timeout=timeout)


async def wait_event(event: asyncio.Event | None, timeout: float) -> bool:  # noqa: ASYNC109
    """Wait for ``event`` up to ``timeout`` seconds; True if it was set."""
    if event is None:
        return True
    try:
        async with asyncio.timeout(timeout):
            await event.wait()
    except TimeoutError:
        return False
    return True
