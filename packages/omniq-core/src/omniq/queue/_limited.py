"""LIMITED events: a worker whose claim found ready tasks held back by their flow
limits logs one event per limit key per second at most (``task_id`` is the key), and
backs off briefly before asking the store again, so held work is not polled hot."""

from __future__ import annotations

import time

from omniq.models import EventType, TaskEvent

__all__ = ["HeldBack"]


class HeldBack:
    """Throttles LIMITED events per key and paces claims while work is held back."""

    EVERY = 1.0
    """Seconds between two LIMITED events of one key (per worker)."""
    MIN_PAUSE = 0.005
    MAX_PAUSE = 0.02
    """Bounds of the pause before the next claim while everything ready is held back."""

    def __init__(self) -> None:
        self._last: dict[str, float] = {}
        self.pause = 0.0

    def events(self, keys: list[str], worker_id: str) -> list[TaskEvent]:
        """The LIMITED events due for ``keys`` (the keys a claim held tasks back for)."""
        t = time.monotonic()
        out: list[TaskEvent] = []
        for key in keys:
            if t - self._last.get(key, -self.EVERY) >= self.EVERY:
                self._last[key] = t
                out.append(
                    TaskEvent(
                        task_id=key,
                        type=EventType.LIMITED,
                        worker_id=worker_id,
                        metadata={"limit_key": key},
                    )
                )
        return out

    def claimed(self, got: int, held: bool) -> None:
        """Record a claim's outcome: an empty claim with held tasks lengthens the pause."""
        if got or not held:
            self.pause = 0.0
        else:
            self.pause = min(self.MAX_PAUSE, max(self.MIN_PAUSE, self.pause * 2))
