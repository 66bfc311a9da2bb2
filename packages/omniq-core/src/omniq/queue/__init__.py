"""omniq.queue: queue orchestration over the storage contracts.

``AsyncTaskQueue`` enqueues (in batches), reads and cancels tasks and turns worker
outcomes into completions, retries, results and events; ``TaskQueue`` is its blocking
twin. Policy: ``RetryManager`` (exponential backoff, full jitter, cap),
``CircuitBreaker``/``BreakerRegistry`` (defer a failing function's tasks, back off from
an unreachable backend), ``DependencyResolver`` (cycles rejected at enqueue) and
``TTLManager`` (expiry, lease reclaim, result purge).
"""

from __future__ import annotations

from ._breaker import BreakerRegistry, BreakerState, CircuitBreaker
from ._build import build_task, task_ids
from ._deps import DependencyResolver
from ._portal import BlockingRunner, SyncInAsyncWarning
from ._queue import AsyncTaskQueue
from ._retry import RetryManager, RetryPolicy
from ._source import QueueWorkerSource, default_worker_id
from ._sync import TaskQueue
from ._ttl import TTLManager, TTLReport

__all__ = [
    "AsyncTaskQueue",
    "BlockingRunner",
    "BreakerRegistry",
    "BreakerState",
    "CircuitBreaker",
    "DependencyResolver",
    "QueueWorkerSource",
    "RetryManager",
    "RetryPolicy",
    "SyncInAsyncWarning",
    "TTLManager",
    "TTLReport",
    "TaskQueue",
    "build_task",
    "default_worker_id",
    "task_ids",
]
