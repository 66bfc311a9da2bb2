"""One read of the task counts shared by every page, fragment and scrape of an app.

Counting tasks by queue and status reads every task, so its cost grows with the store.
While one read is cheap (at most ``budget`` seconds) every request reads afresh, as if
nothing were shared. Once it costs more, requests are answered from the last read and a
single background read replaces it when it is older than ``poll`` seconds and older
than ``share`` times its own cost, so however many browsers and scrapers ask, counting
takes at most about one ``share``-th of the store's time; the overview states the
counts' age. An action (pause, resume, requeue, purge) drops the shared read, so the
page shown after it is read afresh.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass

from omniq.core import OmniQ
from omniq.models import QueueInfo, TaskStatus

from ._stats import Sampler

__all__ = ["Counts", "SharedCounts"]


@dataclass(frozen=True)
class Counts:
    """Every queue with its counts, read at ``at`` (epoch seconds) in ``cost`` seconds."""

    at: float
    cost: float
    queues: list[QueueInfo]
    oldest_created: dict[str, float]
    """Creation time of each queue's oldest pending task (queues with none are absent)."""

    def oldest_ages(self, now: float) -> dict[str, float]:
        return {q: max(0.0, now - created) for q, created in self.oldest_created.items()}


class SharedCounts:
    """The app's current :class:`Counts`, read afresh or shared as the module says."""

    def __init__(
        self, oq: OmniQ, poll: float, *, budget: float = 0.05, share: float = 10.0
    ) -> None:
        self.oq = oq
        self.poll = poll
        self.budget = budget
        self.share = share
        self.sampler = Sampler()
        self._last: Counts | None = None
        self._lock = asyncio.Lock()
        self._refresh: asyncio.Task[None] | None = None
        self._generation = 0
        self.reads = 0
        """Reads of the counts so far (a benchmark reports how many ran in the background)."""

    @property
    def last(self) -> Counts | None:
        """The counts kept now (None before the first read or after an action)."""
        return self._last

    async def read(self) -> Counts:
        """Read the counts from the store now (and add them to the throughput samples)."""
        generation = self._generation
        start = time.perf_counter()
        at = time.time()
        queues = await self.oq.list_queues()
        oldest: dict[str, float] = {}
        for q in queues:
            if q.counts.get(TaskStatus.PENDING, 0):
                first = await self.oq.list_tasks(queue=q.name, status=TaskStatus.PENDING, limit=1)
                if first:
                    oldest[q.name] = first[0].created_at
        counts = Counts(at, time.perf_counter() - start, queues, oldest)
        self.reads += 1
        if generation == self._generation and (self._last is None or counts.at >= self._last.at):
            self._last = counts
            self.sampler.add(counts.at, queues)
        return counts

    async def get(self) -> Counts:
        """The counts a request shows: fresh while reading is cheap, else the shared ones."""
        last = self._last
        if last is None:
            async with self._lock:  # concurrent first requests share one read
                if self._last is None:
                    return await self.read()
                last = self._last
        if last.cost <= self.budget:
            return await self.read()
        age = time.time() - last.at
        if age >= max(self.poll, self.share * last.cost) and (
            self._refresh is None or self._refresh.done()
        ):
            self._refresh = asyncio.create_task(self._background())
        return last

    async def _background(self) -> None:
        # A failed read keeps the last counts; the next request past the interval retries.
        with contextlib.suppress(Exception):
            await self.read()

    def invalidate(self) -> None:
        """Forget the shared counts: the next request reads afresh (after an action)."""
        self._last = None
        self._generation += 1  # a read begun before the action must not be kept

    async def close(self) -> None:
        """Stop a background read still running (the app is shutting down)."""
        task = self._refresh
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
