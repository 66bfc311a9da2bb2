"""Blocking calls into async code: a private event loop in a helper thread.

Works from plain scripts, from many threads at once, from inside a running event loop
(with a warning: the calling loop is blocked meanwhile) and in a forked child (the
portal thread does not survive ``fork``, so a new one is started).
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import warnings
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from omniq.models import ConfigError, OmniQError
from omniq.workers import wait_interruptibly

__all__ = ["BlockingRunner", "SyncInAsyncWarning", "loop_factory"]

T = TypeVar("T")


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
    ``asyncio.new_event_loop`` (which honours an installed event loop policy). uvloop's
    cheaper wake-up from idle shortens an idle worker's enqueue-to-start latency
    (docs/performance.md, item 7).
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


class BlockingRunner:
    """Runs coroutine functions on a helper-thread event loop and waits for them.

    An event loop (``factory``: asyncio's default unless given) in a daemon thread;
    anyio code runs on it as on any asyncio loop. It is re-created in a forked child,
    where the parent's thread does not exist.
    """

    def __init__(self, factory: Callable[[], asyncio.AbstractEventLoop] | None = None) -> None:
        self._factory = factory or asyncio.new_event_loop
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The helper loop, started on first use (and again after a fork)."""
        loop = self._loop
        if loop is not None and self._pid == os.getpid():
            return loop
        with self._lock:
            if self._pid != os.getpid():  # forked: the parent's loop thread is gone here
                self._loop = self._thread = None
                self._pid = os.getpid()
            if self._loop is None:
                loop = self._factory()
                ready = threading.Event()

                def serve() -> None:
                    asyncio.set_event_loop(loop)
                    loop.call_soon(ready.set)
                    loop.run_forever()
                    loop.run_until_complete(loop.shutdown_asyncgens())
                    loop.close()

                thread = threading.Thread(target=serve, name="omniq-loop", daemon=True)
                thread.start()
                ready.wait()
                self._loop, self._thread = loop, thread
            return self._loop

    @property
    def portal(self) -> _Portal:
        """``portal.call(async_fn, *args)``: like anyio's BlockingPortal.call."""
        return _Portal(self)

    @property
    def started(self) -> bool:
        return self._loop is not None and self._pid == os.getpid()

    def in_portal_thread(self) -> bool:
        return self.started and threading.current_thread() is self._thread

    def run(self, func: Callable[..., Awaitable[T]], *args: Any) -> T:
        """``await func(*args)`` on the helper loop and return its result (exceptions keep
        their type and traceback)."""
        if self.in_portal_thread():
            raise OmniQError(
                "a blocking *_sync call was made from OmniQ's own event loop thread "
                "(it would deadlock); await the async method instead"
            )
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            warnings.warn(
                "blocking OmniQ *_sync call from a running event loop: the loop is blocked "
                "until it returns; use the async method (await oq.name(...)) instead",
                SyncInAsyncWarning,
                stacklevel=3,
            )

        async def call() -> T:
            return await func(*args)

        return wait_interruptibly(asyncio.run_coroutine_threadsafe(call(), self.loop))

    def close(self) -> None:
        """Stop the loop thread (if this process started it)."""
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
            if loop is None or thread is None or self._pid != os.getpid():
                return

            async def cancel_all() -> None:
                me = asyncio.current_task()
                tasks = [t for t in asyncio.all_tasks() if t is not me]
                for t in tasks:
                    t.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)

            asyncio.run_coroutine_threadsafe(cancel_all(), loop).result()
            loop.call_soon_threadsafe(loop.stop)
            thread.join()


class _Portal:
    """The subset of anyio's BlockingPortal that OmniQ code uses."""

    def __init__(self, runner: BlockingRunner) -> None:
        self._runner = runner

    def call(self, func: Callable[..., Awaitable[T]], *args: Any) -> T:
        return self._runner.run(func, *args)
