"""The sync bridge: blocking calls into async code, for OmniQ's own distributions.

This module serves omniq-events, omniq-workers and omniq-core (the blocking twins
``EventLogger``, ``WorkerPool``, ``TaskQueue``, ``Scheduler`` and the ``*_sync`` methods
of ``OmniQ``). It is importable but not part of the user-facing API: names here may
change in any release. It lives in the lowest distribution that needs it.

One design serves every caller: an anyio ``BlockingPortal`` into an event loop.

- ``ThreadPortal`` runs an event loop in a helper thread (uvloop or asyncio, see
  ``loop_factory``), started on first use and started anew in a forked child, where
  the parent's thread does not exist.
- ``serve_portal()`` opens a portal into the loop that is already running, so an object
  bound to the caller's loop can be reached from other threads and other loops.
- ``LoopPortal`` is the handle both give out: ``call`` blocks (refusing to run on the
  portal's own loop thread, where it would deadlock, and optionally warning with
  ``SyncInAsyncWarning`` when the caller's thread runs another loop), ``call_async``
  awaits from another loop; exceptions keep their type and traceback.
- Blocking waits go through ``wait_interruptibly`` so Python signal handlers still run.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import signal
import sys
import threading
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any, TypeVar

import anyio
from anyio.from_thread import BlockingPortal

from omniq.models import ConfigError, EventLoopError

__all__ = [
    "LoopPortal",
    "SyncInAsyncWarning",
    "ThreadPortal",
    "loop_factory",
    "serve_portal",
    "stop_on_signals",
    "wait_interruptibly",
]

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)

_POLL = 0.2


class SyncInAsyncWarning(RuntimeWarning):
    """A blocking ``*_sync`` call was made from a thread that runs an event loop."""


def _gevent_patched() -> bool:
    monkey = sys.modules.get("gevent.monkey")
    return monkey is not None and bool(monkey.is_anything_patched())


def loop_factory(kind: str = "auto") -> Callable[[], asyncio.AbstractEventLoop]:
    """The constructor of the event loop named by the ``event_loop`` setting.

    ``auto`` picks uvloop when it is installed and gevent has not monkey-patched the
    process (uvloop's own I/O would bypass gevent's hub), else asyncio's default loop;
    ``uvloop`` insists on it (ConfigError when it is not installed); ``asyncio`` is
    ``asyncio.new_event_loop`` (which honours an installed event loop policy). uvloop
    wakes from idle more cheaply, which shortens an idle worker's enqueue-to-start time.
    """
    if kind not in ("auto", "asyncio", "uvloop"):
        raise ConfigError("event_loop", kind, "one of auto, asyncio, uvloop")
    if kind == "asyncio" or (kind == "auto" and _gevent_patched()):
        return asyncio.new_event_loop
    try:
        import uvloop
    except ImportError:
        if kind == "uvloop":
            raise ConfigError(
                "event_loop", kind, "auto or asyncio", "uvloop is not installed"
            ) from None
        return asyncio.new_event_loop
    return uvloop.new_event_loop


def wait_interruptibly(future: concurrent.futures.Future[T], timeout: float | None = None) -> T:
    """``future.result(timeout)``, waking every 0.2 s so signal handlers can run.

    A signal sent to the process (``kill -TERM pid``) may be delivered to any thread. When
    it lands on a helper thread (an event loop's) while the main thread sleeps in an
    untimed lock wait, the main thread never returns to the interpreter, so the Python
    handler (graceful shutdown) never runs. Short timed waits let it run within ~0.2 s.
    """
    if timeout is not None:
        return future.result(timeout)
    while True:
        try:
            return future.result(_POLL)
        except TimeoutError:
            if future.done():  # the future itself raised TimeoutError
                raise


def stop_on_signals(stop: Callable[[], object]) -> Callable[[], None]:
    """Make SIGTERM/SIGINT call ``stop`` in a new thread; returns a function restoring the
    previous handlers. Main thread only.

    ``stop`` usually blocks on a portal; running it in its own thread keeps the handler
    from waiting on a loop that may need the main thread to make progress.
    """
    previous = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}

    def handler(signum: int, frame: object) -> None:
        threading.Thread(target=stop, daemon=True).start()

    for s in previous:
        signal.signal(s, handler)

    def restore() -> None:
        for s, h in previous.items():
            signal.signal(s, h)

    return restore


class LoopPortal:
    """Calls into one event loop from other threads (``call``) and other loops
    (``call_async``), over an anyio ``BlockingPortal`` running on that loop.

    ``warn``: a blocking ``call`` from a thread that runs its own event loop emits
    ``SyncInAsyncWarning`` (that loop is blocked meanwhile).
    """

    def __init__(
        self, portal: BlockingPortal, loop: asyncio.AbstractEventLoop, thread_id: int, *, warn: bool
    ) -> None:
        self._portal = portal
        self.loop = loop
        self._thread_id = thread_id
        self._warn = warn

    def in_loop_thread(self) -> bool:
        """True when called from the thread that runs the portal's loop."""
        return threading.get_ident() == self._thread_id

    def start_task_soon(
        self, func: Callable[..., Awaitable[T]], *args: Any
    ) -> concurrent.futures.Future[T]:
        """Run ``await func(*args)`` on the loop; returns at once with a Future
        (cancelling the Future cancels the task)."""
        if self.in_loop_thread():
            raise EventLoopError(
                "a blocking call was made on the event loop thread it would wait for "
                "(it would deadlock); await the async method there instead"
            )
        return self._portal.start_task_soon(func, *args)

    def call(self, func: Callable[..., Awaitable[T]], *args: Any) -> T:
        """``await func(*args)`` on the loop and return its result, blocking the caller."""
        future = self.start_task_soon(func, *args)
        if self._warn:
            try:
                asyncio.get_running_loop()
            except RuntimeError:
                pass
            else:
                warnings.warn(
                    "blocking OmniQ *_sync call from a running event loop: the loop is "
                    "blocked until it returns; use the async method (await oq.name(...)) "
                    "instead",
                    SyncInAsyncWarning,
                    stacklevel=4,
                )
        return wait_interruptibly(future)

    async def call_async(self, func: Callable[..., Awaitable[T]], *args: Any) -> T:
        """``await func(*args)`` on the portal's loop from another loop; cancelling the
        caller cancels the call."""
        return await self._portal.call_async(func, *args)

    def wrap_async_context_manager(
        self, cm: contextlib.AbstractAsyncContextManager[T_co]
    ) -> contextlib.AbstractContextManager[T_co]:
        """A blocking context manager entering and exiting ``cm`` in one task on the loop."""
        return self._portal.wrap_async_context_manager(cm)

    def iterate(self, agen: AsyncIterator[T]) -> Iterator[T]:
        """Drive an async iterator on the loop, one blocking step at a time; closing the
        returned iterator closes ``agen``."""
        done = object()

        async def step() -> Any:
            try:
                return await agen.__anext__()
            except StopAsyncIteration:
                return done

        try:
            while True:
                item = self.call(step)
                if item is done:
                    return
                yield item
        finally:
            aclose = getattr(agen, "aclose", None)
            if aclose is not None:
                with contextlib.suppress(RuntimeError):  # the portal has stopped
                    self.call(aclose)


@contextlib.asynccontextmanager
async def serve_portal(*, warn: bool = False) -> AsyncIterator[LoopPortal]:
    """A portal into the running loop, open for the duration of the block.

    Enter and exit it in one task that stays alive meanwhile (anyio task-group rule).
    """
    async with BlockingPortal() as portal:
        yield LoopPortal(portal, asyncio.get_running_loop(), threading.get_ident(), warn=warn)


class ThreadPortal:
    """An event loop in a helper thread and a ``LoopPortal`` into it.

    ``factory`` makes the loop (asyncio's default unless given; see ``loop_factory``).
    The thread starts on first use of ``portal``, and again in a forked child (the
    parent's thread does not survive ``fork``; its objects are dropped untouched);
    ``close`` stops it.
    """

    def __init__(
        self,
        factory: Callable[[], asyncio.AbstractEventLoop] | None = None,
        *,
        warn: bool = False,
    ) -> None:
        self._factory = factory
        self._warn = warn
        self._lock = threading.Lock()
        self._running: tuple[BlockingPortal, threading.Thread] | None = None
        self._portal: LoopPortal | None = None
        self._pid = os.getpid()

    @property
    def started(self) -> bool:
        """True while this process's helper thread runs."""
        return self._portal is not None and self._pid == os.getpid()

    @property
    def portal(self) -> LoopPortal:
        """The portal into the helper loop, started on first use (and after a fork)."""
        portal = self._portal
        if portal is not None and self._pid == os.getpid():
            return portal
        with self._lock:
            if self._pid != os.getpid():  # forked: the parent's loop thread is gone here
                self._running = self._portal = None
                self._pid = os.getpid()
            if self._portal is None:
                self._portal = self._start()
            return self._portal

    def _start(self) -> LoopPortal:
        ready: concurrent.futures.Future[LoopPortal] = concurrent.futures.Future()
        options = {"loop_factory": self._factory} if self._factory is not None else None

        async def serve() -> None:
            async with BlockingPortal() as portal:
                loop, ident = asyncio.get_running_loop(), threading.get_ident()
                ready.set_result(LoopPortal(portal, loop, ident, warn=self._warn))
                await portal.sleep_until_stopped()

        def run() -> None:
            try:
                anyio.run(serve, backend="asyncio", backend_options=options)
            except BaseException as exc:
                if not ready.done():
                    ready.set_exception(exc)
                    return
                raise

        thread = threading.Thread(target=run, name="omniq-loop", daemon=True)
        thread.start()
        portal = ready.result()
        self._running = (portal._portal, thread)
        return portal

    def call(self, func: Callable[..., Awaitable[T]], *args: Any) -> T:
        """``self.portal.call(func, *args)``."""
        return self.portal.call(func, *args)

    def close(self, *, cancel_remaining: bool = False) -> None:
        """Stop the helper loop and join its thread (if this process started it);
        ``cancel_remaining`` cancels calls still running instead of waiting for them."""
        with self._lock:
            running, self._running, self._portal = self._running, None, None
            if running is None or self._pid != os.getpid():
                return
            portal, thread = running
            with contextlib.suppress(RuntimeError):  # already stopped
                portal.call(portal.stop, cancel_remaining)
            thread.join()
