"""omniq.queue: queue orchestration over the storage contracts.

``AsyncTaskQueue`` enqueues (in batches), reads and cancels tasks and turns worker
outcomes into completions, retries, results and events; ``TaskQueue`` is its blocking
twin. Policy: ``RetryManager`` (exponential backoff, full jitter, cap),
``CircuitBreaker``/``BreakerRegistry`` (defer a failing function's tasks, back off from
an unreachable backend), ``DependencyResolver`` (cycles rejected at enqueue) and
``TTLManager`` (expiry, lease reclaim, result purge). ``AsyncScheduler``/``Scheduler``
fire cron, interval and one-shot schedules, safely from many hosts at once.
"""

from __future__ import annotations

from omniq.events.bridge import SyncInAsyncWarning
from omniq.models.lowlevel import publish

from ._breaker import BreakerRegistry, BreakerState, CircuitBreaker
from ._build import EnqueueOptions, TaskSpec, build_task, task_ids
from ._deps import DependencyResolver
from ._queue import AsyncTaskQueue
from ._retry import RetryManager, RetryPolicy
from ._scheduler import (
    AsyncScheduler,
    Clock,
    SchedulerStats,
    SystemClock,
    TickReport,
    run_task,
)
from ._scheduler_sync import Scheduler
from ._source import default_worker_id
from ._sync import TaskQueue
from ._tracing import TRACE_CONTEXT_KEY, Tracing
from ._ttl import TTLManager, TTLReport

__all__ = [
    "TRACE_CONTEXT_KEY",
    "AsyncScheduler",
    "AsyncTaskQueue",
    "BreakerRegistry",
    "BreakerState",
    "CircuitBreaker",
    "Clock",
    "DependencyResolver",
    "EnqueueOptions",
    "RetryManager",
    "RetryPolicy",
    "Scheduler",
    "SchedulerStats",
    "SyncInAsyncWarning",
    "SystemClock",
    "TTLManager",
    "TTLReport",
    "TaskQueue",
    "TaskSpec",
    "TickReport",
    "Tracing",
    "build_task",
    "default_worker_id",
    "run_task",
    "task_ids",
]

# Show public names as omniq.queue.X so the private modules can move freely.
publish(globals())
del publish
