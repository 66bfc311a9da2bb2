"""A bounded, thread-safe FIFO of events waiting to be written.

``put`` is O(1) and never blocks beyond a short lock: it is called on the task hot path,
from worker threads as well as from the event loop. When the buffer is full the drop
policy decides which event is lost, and the loss is counted, never raised.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable
from typing import Literal

from omniq.models import ConfigError, TaskEvent

__all__ = ["DropPolicy", "EventBuffer"]

DropPolicy = Literal["newest", "oldest"]
"""Which event a full buffer loses: the one being logged (``newest``, the default) or
the oldest one still waiting (``oldest``)."""


class EventBuffer:
    """Bounded FIFO with drop counting.

    ``accepted`` counts events that entered the buffer, ``removed`` those that left it
    (taken for writing or evicted by the ``oldest`` policy), ``dropped`` those lost to a
    full buffer under either policy. ``removed`` catching up with a past value of
    ``accepted`` means every event accepted up to then has left the buffer; ``flush``
    relies on this.
    """

    __slots__ = ("_drop_oldest", "_items", "_lock", "accepted", "dropped", "maxsize", "removed")

    def __init__(self, maxsize: int, policy: DropPolicy = "newest") -> None:
        if maxsize < 1:
            raise ConfigError("buffer size", maxsize, "an int >= 1")
        if policy not in ("newest", "oldest"):
            raise ConfigError("drop policy", policy, "'newest' or 'oldest'")
        self.maxsize = maxsize
        self._drop_oldest = policy == "oldest"
        self._items: deque[TaskEvent] = deque()
        self._lock = threading.Lock()
        self.accepted = 0
        self.removed = 0
        self.dropped = 0

    @property
    def policy(self) -> DropPolicy:
        return "oldest" if self._drop_oldest else "newest"

    def __len__(self) -> int:
        return len(self._items)

    def put(self, event: TaskEvent) -> int:
        """Add one event; returns the buffer length after it (0 if the event was dropped)."""
        items = self._items
        with self._lock:
            n = len(items)
            if n >= self.maxsize:
                self.dropped += 1
                if not self._drop_oldest:
                    return 0
                items.popleft()
                self.removed += 1
                n -= 1
            items.append(event)
            self.accepted += 1
            return n + 1

    def put_many(self, events: Iterable[TaskEvent]) -> tuple[int, int]:
        """Add events in order; returns (length before, length after)."""
        items = self._items
        with self._lock:
            before = len(items)
            for event in events:
                if len(items) >= self.maxsize:
                    self.dropped += 1
                    if not self._drop_oldest:
                        continue
                    items.popleft()
                    self.removed += 1
                items.append(event)
                self.accepted += 1
            return before, len(items)

    def take(self, limit: int) -> list[TaskEvent]:
        """Remove and return up to ``limit`` events, oldest first."""
        items = self._items
        with self._lock:
            n = min(limit, len(items))
            batch = [items.popleft() for _ in range(n)]
            self.removed += n
            return batch
