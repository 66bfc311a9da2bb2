"""LIMITED events: a worker whose claim found ready tasks held back by their flow
limits logs one event per limit key per second at most (``task_id`` is the key), and
pauses before asking the store again, so held work is not polled hot. The pause lasts
as long as the store says a held rate needs (``limited_wait``), else it backs off
briefly; it ends at once when this worker frees a concurrency slot itself, or when the
store tells that another worker did (``wait_for_limits``, woken by ``limits_freed``)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable

import anyio

from omniq.models import EventType, Task, TaskEvent
from omniq.workers import Outcome

__all__ = ["HeldBack"]


class HeldBack:
    """Throttles LIMITED events per key and paces claims while work is held back."""

    EVERY = 1.0
    """Seconds between two LIMITED events of one key (per worker)."""
    MIN_PAUSE = 0.005
    MAX_PAUSE = 0.02
    """Bounds of the pause before the next claim while everything ready is held back."""
    MAX_WOKEN = 0.25
    """The longest pause when the store wakes pausing workers as slots free elsewhere
    (``remote``): it only bounds the wait for a slot freed by a lapsed lease."""
    MIN_WAIT = 0.001
    MAX_WAIT = 1.0
    """Bounds of the pause when the store tells when a rate frees (``limited_wait``)."""

    def __init__(self) -> None:
        self._last: dict[str, float] = {}
        self.pause = 0.0
        self._freed: anyio.Event | None = None
        self._was_freed = False
        self.remote: Callable[[float], Awaitable[bool]] | None = None
        """The store's wait for slots freed by other workers (``wait_for_limits`` on
        this worker's queues), when it has one."""

    async def wait(self, timeout: float) -> None:  # noqa: ASYNC109
        """The pause before the next claim: ``timeout`` seconds at most, over as soon as
        this worker frees a concurrency slot (``freed``) or the store tells that
        another one did (``remote``)."""
        if self._was_freed:
            self._was_freed = False
            return
        ev = self._freed = anyio.Event()
        remote = self.remote
        with anyio.move_on_after(timeout):
            if remote is None:
                await ev.wait()
            else:
                async with anyio.create_task_group() as tg:

                    async def far() -> None:
                        await remote(timeout)
                        tg.cancel_scope.cancel()

                    tg.start_soon(far)
                    await ev.wait()
                    tg.cancel_scope.cancel()
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

    def wake(self) -> None:
        """End the pause under way (or the next one, when none is)."""
        if self._freed is not None:
            self._freed.set()
        else:
            self._was_freed = True

    @staticmethod
    def slots(outcomes: Iterable[Outcome]) -> int:
        """How many concurrency slots ``outcomes`` freed (tasks with a cap)."""
        return sum(1 for o in outcomes if o.claimed.task.max_concurrency is not None)

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

    def claimed(self, got: int, held: bool, wait: float | None = None) -> None:
        """Record a claim's outcome: an empty claim with held tasks lengthens the pause.
        ``wait`` (from stores that tell it) is how long until a key held back by its rate
        has budget again: the pause then lasts exactly that long, up to ``MAX_WAIT``."""
        self._was_freed = False
        if got or not held:
            self.pause = 0.0
        elif wait is not None:
            self.pause = min(self.MAX_WAIT, max(self.MIN_WAIT, wait))
        else:
            top = self.MAX_PAUSE if self.remote is None else self.MAX_WOKEN
            self.pause = min(top, max(self.MIN_PAUSE, self.pause * 2))
