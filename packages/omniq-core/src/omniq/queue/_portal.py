"""Blocking calls into async code: a private event loop in a helper thread.

Works from plain scripts, from many threads at once, from inside a running event loop
(with a warning: the calling loop is blocked meanwhile) and in a forked child (the
portal thread does not survive ``fork``, so a new one is started).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import warnings
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from anyio.from_thread import BlockingPortal, start_blocking_portal

from omniq.models import OmniQError

__all__ = ["BlockingRunner", "SyncInAsyncWarning"]

T = TypeVar("T")


class SyncInAsyncWarning(RuntimeWarning):
    """A blocking ``*_sync`` call was made from a thread that runs an event loop."""


class BlockingRunner:
    """Runs coroutine functions on a helper-thread event loop and waits for them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cm: contextlib.AbstractContextManager[BlockingPortal] | None = None
        self._portal: BlockingPortal | None = None
        self._pid = os.getpid()
        self._thread_id: int | None = None

    @property
    def portal(self) -> BlockingPortal:
        """The portal, started on first use (and again after a fork)."""
        portal = self._portal
        if portal is not None and self._pid == os.getpid():
            return portal
        with self._lock:
            if self._pid != os.getpid():  # forked: the parent's loop thread is gone here
                self._cm = self._portal = None
                self._pid = os.getpid()
            if self._portal is None:
                cm = start_blocking_portal(name="omniq-portal")
                self._portal = cm.__enter__()
                self._cm = cm
                self._thread_id = self._portal.call(threading.get_ident)
            return self._portal

    @property
    def started(self) -> bool:
        return self._portal is not None and self._pid == os.getpid()

    def in_portal_thread(self) -> bool:
        return self.started and threading.get_ident() == self._thread_id

    def run(self, func: Callable[..., Awaitable[T]], *args: Any) -> T:
        """``await func(*args)`` on the portal loop and return its result (exceptions keep
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
        return self.portal.call(func, *args)

    def close(self) -> None:
        """Stop the loop thread (if this process started it)."""
        with self._lock:
            cm, self._cm, self._portal = self._cm, None, None
            if cm is not None and self._pid == os.getpid():
                cm.__exit__(None, None, None)
