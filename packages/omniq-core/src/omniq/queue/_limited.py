"""LIMITED events: a worker whose claim found ready tasks held back by their flow
limits logs one event per limit key per second at most (``task_id`` is the key), and
backs off briefly before asking the store again, so held work is not polled hot. The
back-off ends at once when this worker frees a concurrency slot itself (an outcome or
release of a task with ``max_concurrency`` stored), so the slot is claimed again in the
store's next round trip rather than after the pause."""

from __future__ import annotations

import time
from collections.abc import Iterable

import anyio

from omniq.models import EventType, Task, TaskEvent

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
        self._freed: anyio.Event | None = None
        self._was_freed = False

    async def wait(self, timeout: float) -> None:  # noqa: ASYNC109
        """The pause before the next claim: ``timeout`` seconds at most, over as soon as
        this worker frees a concurrency slot (``freed``)."""
        if self._was_freed:
            self._was_freed = False
            return
        ev = self._freed = anyio.Event()
        with anyio.move_on_after(timeout):
            await ev.wait()
        self._freed = None
        self._was_freed = False

    def freed(self, tasks: Iterable[Task]) -> None:
        """Tasks of this worker left the running state in the store (finished, retried or
        released): if one had a concurrency cap, end the pause so its slot is claimed."""
        if not self.pause or not any(t.max_concurrency is not None for t in tasks):
            return
        if self._freed is not None:
            self._freed.set()
        else:
            self._was_freed = True

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
        self._was_freed = False
        if got or not held:
            self.pause = 0.0
        else:
            self.pause = min(self.MAX_PAUSE, max(self.MIN_PAUSE, self.pause * 2))
