"""The numbers of the overview: per queue, counts, throughput, failures, oldest age.

Throughput and failures come from the event log (COMPLETE and ERROR events of the last
``WINDOW`` seconds) when one is configured and the window holds at most ``EVENT_CAP``
of them; otherwise from the change of the success/error counts between the overview's
own samples, taken each time it is shown (its live refresh keeps them coming).
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field

from omniq.core import OmniQ
from omniq.models import EventType, QueueInfo, TaskStatus

__all__ = ["QueueStats", "Sampler", "queue_stats"]

WINDOW = 300.0
EVENT_CAP = 2_000
"""Events read for one overview at most: a busier window is counted from the samples,
so that a refresh costs the same however busy the queues are."""


@dataclass
class QueueStats:
    """One row of the overview."""

    info: QueueInfo
    done: int | None = None
    failed: int | None = None
    window: float = WINDOW
    oldest_pending: float | None = None


@dataclass
class Sampler:
    """Success/error counts by queue over time, for stores without an event log."""

    samples: deque[tuple[float, dict[str, tuple[int, int]]]] = field(
        default_factory=lambda: deque(maxlen=512)
    )

    def add(self, at: float, infos: list[QueueInfo]) -> float:
        """Record counts; returns how far back the oldest sample in the window is."""
        self.samples.append(
            (
                at,
                {
                    q.name: (
                        q.counts.get(TaskStatus.SUCCESS, 0),
                        q.counts.get(TaskStatus.ERROR, 0),
                    )
                    for q in infos
                },
            )
        )
        while self.samples and self.samples[0][0] < at - WINDOW:
            self.samples.popleft()
        return at - self.samples[0][0]

    def span(self) -> float:
        """How far apart the oldest and newest samples in the window are."""
        return self.samples[-1][0] - self.samples[0][0] if self.samples else 0.0

    def delta(self, queue: str) -> tuple[int, int]:
        first, last = self.samples[0][1].get(queue, (0, 0)), self.samples[-1][1].get(queue, (0, 0))
        return max(0, last[0] - first[0]), max(0, last[1] - first[1])


async def queue_stats(
    oq: OmniQ, infos: list[QueueInfo], oldest: dict[str, float], sampler: Sampler
) -> list[QueueStats]:
    """Every queue's row of the overview from its counts ``infos`` and oldest pending
    ages ``oldest``; throughput and failures from the event log or ``sampler``."""
    at = time.time()
    rows = [QueueStats(info=q, oldest_pending=oldest.get(q.name)) for q in infos]
    by_name = {r.info.name: r for r in rows}
    window = sampler.span()
    events = None
    if await oq.events_enabled():
        events = await oq.query_events(
            types=[EventType.COMPLETE, EventType.ERROR], since=at - WINDOW, limit=EVENT_CAP
        )
    if events is not None and len(events) < EVENT_CAP:
        for r in rows:
            r.done, r.failed = 0, 0
        for e in events:
            row = by_name.get(e.queue or "")
            if row is None or row.done is None or row.failed is None:
                continue
            if e.type is EventType.COMPLETE:
                row.done += 1
            else:
                row.failed += 1
    else:
        for r in rows:
            r.done, r.failed = sampler.delta(r.info.name)
            r.window = window
    return rows
