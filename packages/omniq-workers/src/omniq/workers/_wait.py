"""Blocking on a future without starving Python signal handlers."""

from __future__ import annotations

import concurrent.futures
from typing import TypeVar

__all__ = ["wait_interruptibly"]

T = TypeVar("T")

_POLL = 0.2


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
