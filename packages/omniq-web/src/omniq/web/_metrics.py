"""``/metrics``: the store's gauges in the Prometheus text format.

Each scrape builds a fresh registry from one read of the counts (the app's shared read
while counting is costly, see ``_counts``), so the numbers are a consistent snapshot;
any number of dashboard processes report the same values.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.responses import Response

from omniq.core import OmniQ
from omniq.models import QueueInfo, TaskStatus, WorkerInfo

from ._counts import SharedCounts

__all__ = ["StoreSnapshot", "metrics_response"]


class StoreSnapshot(Collector):
    """The store gauges of one scrape: tasks by queue and status, the oldest pending
    task's age per queue, live workers."""

    def __init__(
        self, queues: list[QueueInfo], oldest: dict[str, float], workers: list[WorkerInfo]
    ) -> None:
        self.queues = queues
        self.oldest = oldest
        self.workers = workers

    def collect(self) -> Iterator[GaugeMetricFamily]:
        tasks = GaugeMetricFamily(
            "omniq_queue_tasks",
            "Tasks in the store by queue and status.",
            labels=["queue", "status"],
        )
        for q in self.queues:
            for s in TaskStatus:
                tasks.add_metric([q.name, s.value], q.counts.get(s, 0))
        yield tasks
        oldest = GaugeMetricFamily(
            "omniq_queue_oldest_pending_seconds",
            "Age of the oldest pending task by queue (0 when none is pending).",
            labels=["queue"],
        )
        for q in self.queues:
            oldest.add_metric([q.name], self.oldest.get(q.name, 0.0))
        yield oldest
        yield GaugeMetricFamily(
            "omniq_workers_live", "Worker processes registered and alive.", value=len(self.workers)
        )


async def metrics_response(counts: SharedCounts, oq: OmniQ) -> Response:
    c = await counts.get()
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StoreSnapshot(c.queues, c.oldest_ages(time.time()), await oq.list_workers()))
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
