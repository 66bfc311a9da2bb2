"""Library logging for the event system, kept apart from task events.

Messages go to the stdlib logger ``omniq.events``, whose level the per-component
configuration (``COMPONENT_LOG_LEVELS = {"events": ...}``) sets. Trouble on the hot path
(drops, failing writes) is reported here, rate-limited, and never raised to the caller.
"""

from __future__ import annotations

import logging
import time

from omniq.config import Settings, get_logger
from omniq.storage import event_store_url

__all__ = ["LOGGER_NAME", "RateLimiter", "event_storage_url", "get_library_logger"]

LOGGER_NAME = "omniq.events"


def get_library_logger() -> logging.Logger:
    """The stdlib logger of this component (``omniq.events``)."""
    return get_logger("events")


class RateLimiter:
    """Lets one message through per ``interval`` seconds; the first one at once."""

    __slots__ = ("_last", "interval")

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._last: float | None = None

    def ready(self, *, force: bool = False) -> bool:
        """True (and the window restarts) if a message may be emitted now."""
        t = time.monotonic()
        if force or self._last is None or t - self._last >= self.interval:
            self._last = t
            return True
        return False


def event_storage_url(settings: Settings) -> str:
    """The event store URL the settings name; empty when event logging is disabled.

    ``omniq.storage.event_store_url`` decides, so a logger built from settings writes
    to the same store as ``OmniQ`` with those settings.
    """
    return event_store_url(settings)
