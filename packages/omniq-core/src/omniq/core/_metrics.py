"""Prometheus metrics of OmniQ workers (the ``metrics`` extra: prometheus_client).

Each worker process records task counters, a run-time histogram and its running tasks
into ``metrics_registry()``, and (when asked) refreshes gauges read from the store:
tasks by queue and status, the age of the oldest pending task per queue, live workers.
``run_worker(metrics_port=N)`` / ``omniq worker --metrics-port N`` serve the registry
over HTTP from the worker process.

Under a supervisor (``processes`` > 1) the children write their values into a private
prometheus_client multiprocess directory that the supervisor creates empty, serves with
``MultiProcessCollector`` and deletes when it ends; it marks each exited child dead, so
the running-task gauge counts live children only while the counters of every child,
restarted ones included, add up once each. Only the first child reads the store gauges.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Collection, Sequence
from itertools import repeat
from operator import attrgetter
from typing import TYPE_CHECKING, Any

from omniq.models import (
    ClaimedTask,
    ConfigError,
    MissingExtraError,
    TaskStatus,
)
from omniq.workers import Outcome

if TYPE_CHECKING:
    from omniq.queue import AsyncTaskQueue
    from omniq.storage import WorkerRegistry

__all__ = [
    "DURATION_BUCKETS",
    "METRIC_OPTIONS",
    "MetricsRun",
    "MultiprocessExporter",
    "metrics_registry",
    "start_metrics",
]

DURATION_BUCKETS = (
    0.001,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    300.0,
    float("inf"),
)
"""Bucket bounds (seconds) of ``omniq_task_duration_seconds``."""

METRIC_OPTIONS = ("metrics", "metrics_port", "metrics_host", "metrics_store", "metrics_interval")
"""The ``run_worker`` options this module reads (taken out before the pool sees them)."""

_MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
_log = logging.getLogger("omniq.metrics")
_lock = threading.Lock()
_metrics: _Metrics | None = None


def _require() -> None:
    try:
        import prometheus_client  # noqa: F401
    except ImportError as exc:
        raise MissingExtraError(
            "worker metrics need prometheus_client: pip install 'omniq[metrics]' "
            "(or 'omniq-core[metrics]')"
        ) from exc


class _Metrics:
    """The metric objects of this process, in their own registry."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        r = self.registry = CollectorRegistry()
        labels = ("queue", "function")
        self.started = Counter("omniq_tasks_started", "Task runs started.", labels, registry=r)
        self.succeeded = Counter(
            "omniq_tasks_succeeded", "Task runs that succeeded.", labels, registry=r
        )
        self.failed = Counter(
            "omniq_tasks_failed",
            "Task runs that failed for good (no retry left, or not retryable).",
            labels,
            registry=r,
        )
        self.retried = Counter(
            "omniq_tasks_retried",
            "Task runs that failed (or asked for a retry) and were scheduled to run again.",
            labels,
            registry=r,
        )
        self.duration = Histogram(
            "omniq_task_duration_seconds",
            "Run time of task functions, in seconds.",
            labels,
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.running = Gauge(
            "omniq_tasks_running",
            "Tasks running now.",
            ("queue",),
            registry=r,
            multiprocess_mode="livesum",
        )
        self.queue_tasks = Gauge(
            "omniq_queue_tasks",
            "Stored tasks by queue and status.",
            ("queue", "status"),
            registry=r,
            multiprocess_mode="livemostrecent",
        )
        self.oldest_pending = Gauge(
            "omniq_queue_oldest_pending_seconds",
            "Age of the oldest pending task of each queue, in seconds (0 when none).",
            ("queue",),
            registry=r,
            multiprocess_mode="livemostrecent",
        )
        self.workers_live = Gauge(
            "omniq_workers_live",
            "Workers with a live entry in the worker registry.",
            registry=r,
            multiprocess_mode="livemostrecent",
        )
        self.queues_seen: set[str] = set()


def _get() -> _Metrics:
    global _metrics
    _require()
    with _lock:
        if _metrics is None:
            _metrics = _Metrics()
        return _metrics


def metrics_registry() -> Any:
    """The ``prometheus_client.CollectorRegistry`` holding this process's OmniQ worker
    metrics, to serve from your own application (e.g. ``make_asgi_app(registry=...)``);
    workers started with ``metrics=True`` record into it. Raises MissingExtraError
    without prometheus_client."""
    return _get().registry


_CLAIM_KEY = attrgetter("task.queue", "task.func")
_CLAIM_ID = attrgetter("task.id")
_OUTCOME_KEY = attrgetter("claimed.task.queue", "claimed.task.func")
_OUTCOME_ID = attrgetter("claimed.task.id")
_STATUS = attrgetter("status")
_STARTED_AT = attrgetter("started_at")
_DURATION = attrgetter("duration")


def _observe_all(child: Any, durations: list[float]) -> None:
    """``child.observe(d)`` for each of ``durations``, with one locked update per bucket
    hit and one for the sum instead of two per sample (the histogram child's own value
    cells, as ``observe`` updates them; through ``observe`` when they are not there)."""
    buckets = getattr(child, "_buckets", None)
    total = getattr(child, "_sum", None)
    if (
        not isinstance(buckets, list)
        or len(buckets) != len(DURATION_BUCKETS)
        or getattr(child, "_upper_bounds", None) != list(DURATION_BUCKETS)
        or total is None
    ):
        for d in durations:
            child.observe(d)
        return
    # ``observe`` counts d in the first bucket whose bound is >= d: with the durations
    # sorted, bucket i holds those in (bound[i-1], bound[i]] (the last bucket: the rest)
    ordered = sorted(durations)
    upto = bisect.bisect_right
    below = 0
    last = len(DURATION_BUCKETS) - 1
    for i, bound in enumerate(DURATION_BUCKETS):
        within = len(ordered) if i == last else upto(ordered, bound)
        if within > below:
            buckets[i].inc(within - below)
            below = within
        if below == len(ordered):
            break
    total.inc(sum(durations))


class _Observer:
    """Counts what a worker source reports (``OutcomeObserver``).

    Batches arrive from the pool's flusher (up to hundreds of tasks): counts and run
    times are gathered per (queue, function) first and applied once per label set, and
    the label children are cached, so a task costs a few dictionary and list operations.
    """

    def __init__(self, m: _Metrics) -> None:
        self.m = m
        self._running: dict[str, str] = {}  # task id -> queue, for the running gauge
        self._children: dict[tuple[str, str], tuple[Any, Any, Any, Any, Any]] = {}
        self._gauges: dict[str, Any] = {}

    def _child(self, key: tuple[str, str]) -> tuple[Any, Any, Any, Any, Any]:
        found = self._children.get(key)
        if found is None:
            m = self.m
            if len(self._children) >= 10_000:  # forged function names must not grow it
                self._children.clear()
            found = self._children[key] = (
                m.started.labels(*key),
                m.succeeded.labels(*key),
                m.retried.labels(*key),
                m.failed.labels(*key),
                m.duration.labels(*key),
            )
        return found

    def _running_gauge(self, queue: str) -> Any:
        g = self._gauges.get(queue)
        if g is None:
            g = self._gauges[queue] = self.m.running.labels(queue)
        return g

    def _move(self, delta: dict[str, int]) -> None:
        for queue, n in delta.items():
            if n:
                self._running_gauge(queue).inc(n)

    def started(self, claims: Sequence[ClaimedTask]) -> None:
        running = self._running
        keys = list(map(_CLAIM_KEY, claims))
        first = keys[0] if keys else None
        if first is not None and keys.count(first) == len(keys):
            # the usual batch: one queue and function, counted without a Python loop
            self._child(first)[0].inc(len(keys))
            before = len(running)
            running.update(zip(map(_CLAIM_ID, claims), repeat(first[0])))
            if len(running) > before:
                self._running_gauge(first[0]).inc(len(running) - before)
            return
        per_key: dict[tuple[str, str], int] = {}
        delta: dict[str, int] = {}
        get = per_key.get
        for key, c in zip(keys, claims, strict=True):
            per_key[key] = get(key, 0) + 1
            tid = c.task.id
            if tid not in running:
                queue = key[0]
                running[tid] = queue
                delta[queue] = delta.get(queue, 0) + 1
        for key, n in per_key.items():
            self._child(key)[0].inc(n)
        self._move(delta)

    def reported(self, outcomes: Sequence[Outcome], retried: set[str]) -> None:
        keys = list(map(_OUTCOME_KEY, outcomes))
        first = keys[0] if keys else None
        if (
            first is not None
            and keys.count(first) == len(keys)
            and list(map(_STATUS, outcomes)).count(TaskStatus.SUCCESS) == len(keys)
            and None not in map(_STARTED_AT, outcomes)
        ):
            # the usual batch: successes of one queue and function, all run, counted
            # without a Python loop
            child = self._child(first)
            child[1].inc(len(keys))
            _observe_all(child[4], list(map(_DURATION, outcomes)))
            pop = self._running.pop
            popped = list(map(pop, map(_OUTCOME_ID, outcomes), repeat(None)))
            ended = len(popped) - popped.count(None)
            if ended:
                self._running_gauge(first[0]).inc(-ended)
            return
        # Per (queue, function): [succeeded, retried, failed, run times]; the usual batch
        # is all successes of one function, so its key is built once per run of equal keys.
        per_key: dict[tuple[str, str], list[Any]] = {}
        delta: dict[str, int] = {}
        pop = self._running.pop
        success, error, expired = TaskStatus.SUCCESS, TaskStatus.ERROR, TaskStatus.EXPIRED
        last_queue = last_func = None
        cell: list[Any] = []
        times: list[float] = []
        for o in outcomes:
            task = o.claimed.task
            queue, func = task.queue, task.func
            if queue != last_queue or func != last_func:
                key = (queue, func)
                found = per_key.get(key)
                if found is None:
                    found = per_key[key] = [0, 0, 0, []]
                cell, times = found, found[3]
                last_queue, last_func = queue, func
            status = o.status
            if status is success:
                cell[0] += 1
            elif task.id in retried:
                cell[1] += 1
            elif status is error:
                cell[2] += 1
            if o.started_at is not None and status is not expired:
                times.append(o.duration)
            if pop(task.id, None) is not None:
                delta[queue] = delta.get(queue, 0) - 1
        for key, (ok, again, failed, timed) in per_key.items():
            child = self._child(key)
            if ok:
                child[1].inc(ok)
            if again:
                child[2].inc(again)
            if failed:
                child[3].inc(failed)
            if timed:
                _observe_all(child[4], timed)
        self._move(delta)

    def abandoned(self, task_ids: Collection[str]) -> None:
        """Held tasks the worker let go of without an outcome (a lost lease, a cancel):
        no longer running here."""
        delta: dict[str, int] = {}
        for tid in task_ids:
            queue = self._running.pop(tid, None)
            if queue is not None:
                delta[queue] = delta.get(queue, 0) - 1
        self._move(delta)

    def released(self, claims: Sequence[ClaimedTask]) -> None:
        delta: dict[str, int] = {}
        for c in claims:
            queue = self._running.pop(c.task.id, None)
            if queue is not None:
                delta[queue] = delta.get(queue, 0) - 1
        self._move(delta)


async def _refresh(m: _Metrics, queue: AsyncTaskQueue, registry: WorkerRegistry | None) -> None:
    """Read the store gauges once."""
    counts = await queue.tasks.counts()
    queues = {q for q, _ in counts} | m.queues_seen
    m.queues_seen = queues
    t = time.time()
    for name in sorted(queues):
        for status in TaskStatus:
            m.queue_tasks.labels(name, status.value).set(counts.get((name, status), 0))
        age = 0.0
        if counts.get((name, TaskStatus.PENDING), 0):
            oldest = await queue.tasks.list(queue=name, status=TaskStatus.PENDING, limit=1)
            if oldest:
                since = oldest[0].created_at
                if oldest[0].eta is not None:
                    since = max(since, oldest[0].eta)
                age = max(0.0, t - since)
        m.oldest_pending.labels(name).set(age)
    if registry is not None:
        m.workers_live.set(len(await registry.list()))


async def _refresh_loop(
    m: _Metrics, queue: AsyncTaskQueue, registry: WorkerRegistry | None, interval: float
) -> None:
    while True:
        try:
            await _refresh(m, queue, registry)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            _log.debug("refreshing the store metrics failed: %s", exc)
        await asyncio.sleep(interval)


def _serve(host: str, port: int, registry: Any) -> Any:
    from prometheus_client import start_http_server

    try:
        server, _thread = start_http_server(port, addr=host, registry=registry)
    except OSError as exc:
        raise ConfigError(
            "metrics_port", port, f"a free port on {host}", f"cannot listen: {exc}"
        ) from exc
    return server


class MetricsRun:
    """The metrics of one worker pool: closes its source, then stops the store refresher
    and the HTTP server (if any)."""

    def __init__(self, source: Any, refresher: asyncio.Task[None] | None, server: Any) -> None:
        self._source = source
        self._refresher = refresher
        self._server = server

    async def close(self) -> None:
        try:
            await self._source.close()
        finally:
            if self._refresher is not None:
                self._refresher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._refresher
            if self._server is not None:
                server, self._server = self._server, None
                await asyncio.to_thread(_shutdown, server)


def _shutdown(server: Any) -> None:
    server.shutdown()
    server.server_close()


def start_metrics(
    queue: AsyncTaskQueue,
    source: Any,
    registry: WorkerRegistry | None,
    options: dict[str, Any],
) -> MetricsRun | None:
    """Turn the pool options' metrics on for ``source`` (a QueueWorkerSource): counters
    through its observer, the store refresher, the HTTP server. Returns None when the
    options ask for no metrics. Call on the pool's event loop."""
    port = options.get("metrics_port")
    enabled = bool(options.get("metrics")) or port is not None
    if not enabled:
        return None
    m = _get()
    server = None
    if port is not None:
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            raise ConfigError("metrics_port", port, "a TCP port number (0 to 65535)")
        server = _serve(str(options.get("metrics_host") or "127.0.0.1"), port, m.registry)
    source.observer = _Observer(m)
    refresher = None
    if options.get("metrics_store", True):
        interval = float(options.get("metrics_interval") or 5.0)
        refresher = asyncio.get_running_loop().create_task(
            _refresh_loop(m, queue, registry, interval)
        )
    return MetricsRun(source, refresher, server)


class MultiprocessExporter:
    """The supervisor's side of multi-process metrics: a private multiprocess directory
    for its children, served over HTTP as one set of metrics."""

    def __init__(self, host: str, port: int) -> None:
        _require()
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            raise ConfigError("metrics_port", port, "a TCP port number (0 to 65535)")
        self.host = host
        self.port = port
        self.path = ""
        self._server: Any = None

    def start(self) -> dict[str, str]:
        """Create the directory, start serving; returns the environment entries the
        children need."""
        from prometheus_client import CollectorRegistry
        from prometheus_client.multiprocess import MultiProcessCollector

        self.path = tempfile.mkdtemp(prefix="omniq-metrics-")
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=self.path)  # type: ignore[no-untyped-call]
        try:
            self._server = _serve(self.host, self.port, registry)
        except BaseException:
            shutil.rmtree(self.path, ignore_errors=True)
            raise
        return {_MULTIPROC_ENV: self.path}

    def child_exited(self, pid: int) -> None:
        """Forget the live gauges of an exited child (its counters stay counted)."""
        from prometheus_client.multiprocess import mark_process_dead

        with contextlib.suppress(OSError):
            mark_process_dead(pid, self.path)  # type: ignore[no-untyped-call]

    def stop(self) -> None:
        """Stop serving and delete the directory."""
        if self._server is not None:
            server, self._server = self._server, None
            _shutdown(server)
        if self.path and os.path.isdir(self.path):
            shutil.rmtree(self.path, ignore_errors=True)
