"""Task lifecycle events: non-blocking logging, processing and retention.

``AsyncEventLogger`` buffers events on the task hot path and writes them in batches in
the background; ``AsyncEventProcessor`` subscribes handlers, follows the log live,
replays and queries it. ``EventLogger`` and ``EventProcessor`` are their blocking twins.
Library logging (the stdlib ``omniq.events`` logger) stays separate from task events.
"""

from __future__ import annotations

from omniq.models.lowlevel import publish

from ._buffer import DropPolicy, EventBuffer
from ._builders import (
    TaskRef,
    cancelled_event,
    complete_event,
    enqueued_event,
    error_event,
    executing_event,
    expired_event,
    progress_event,
    queue_paused_event,
    queue_resumed_event,
    retry_event,
    schedule_paused_event,
    schedule_resumed_event,
)
from ._ids import event_id
from ._logger import AsyncEventLogger, EventLoggerStats, EventsListener
from ._processor import AsyncEventProcessor, EventHandler, Subscription
from ._report import LOGGER_NAME
from ._sync import EventLogger, EventProcessor

__all__ = [
    "LOGGER_NAME",
    "AsyncEventLogger",
    "AsyncEventProcessor",
    "DropPolicy",
    "EventBuffer",
    "EventHandler",
    "EventLogger",
    "EventLoggerStats",
    "EventProcessor",
    "EventsListener",
    "Subscription",
    "TaskRef",
    "cancelled_event",
    "complete_event",
    "enqueued_event",
    "error_event",
    "event_id",
    "executing_event",
    "expired_event",
    "progress_event",
    "queue_paused_event",
    "queue_resumed_event",
    "retry_event",
    "schedule_paused_event",
    "schedule_resumed_event",
]

# Show public names as omniq.events.X so the private modules can move freely.
publish(globals())
del publish
