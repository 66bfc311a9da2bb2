"""SIGTERM/SIGINT handling: the first signal stops gracefully, a second one at once."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from omniq.models import InvalidTaskError

__all__ = ["install_signal_handlers"]


class _Stoppable(Protocol):
    def request_stop(self, *, force: bool = False) -> None: ...


def install_signal_handlers(
    pool: _Stoppable, signals: Iterable[signal.Signals] = (signal.SIGTERM, signal.SIGINT)
) -> Callable[[], None]:
    """Route ``signals`` to ``pool.request_stop``; returns a function restoring the old handlers.

    The first signal asks for a graceful stop (running tasks get the shutdown grace,
    the rest is handed back); any further signal forces the stop. Must be called from
    the main thread, as Python only delivers signals there.
    """
    if threading.current_thread() is not threading.main_thread():
        raise InvalidTaskError("signal handlers can only be installed from the main thread")
    count = 0

    def handler(signum: int, frame: Any) -> None:
        nonlocal count
        count += 1
        pool.request_stop(force=count > 1)

    previous = {sig: signal.signal(sig, handler) for sig in signals}

    def restore() -> None:
        for sig, old in previous.items():
            signal.signal(sig, old)

    return restore
