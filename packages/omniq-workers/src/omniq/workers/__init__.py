"""OmniQ execution engines: async, thread, process and gevent workers under one pool.

Workers run callables under a timeout and report what happened; policy (retries,
dependencies, TTL bookkeeping, callbacks) lives in omniq-core, which plugs into the
pool through two protocols: a :class:`TaskSource` to claim, renew and release leased
tasks, and an :class:`OutcomeSink` that receives :class:`Outcome` batches.
"""

from __future__ import annotations

from omniq.models.lowlevel import publish

from ._async import AsyncWorker, is_async_callable
from ._base import Worker
from ._context import TaskContext, current_task, current_task_or_none
from ._gevent import GeventWorker, gevent_patched, require_worker_extra
from ._pool import AsyncWorkerPool
from ._process import ProcessWorker, RemoteTaskError
from ._signals import install_signal_handlers
from ._sync import WorkerPool
from ._thread import ThreadWorker
from ._types import (
    CancelSource,
    Outcome,
    OutcomeSink,
    PoolStats,
    ProgressSource,
    RunEndSource,
    RunTracer,
    TaskSource,
    WorkerPresence,
)

__all__ = [
    "AsyncWorker",
    "AsyncWorkerPool",
    "CancelSource",
    "GeventWorker",
    "Outcome",
    "OutcomeSink",
    "PoolStats",
    "ProcessWorker",
    "ProgressSource",
    "RemoteTaskError",
    "RunEndSource",
    "RunTracer",
    "TaskContext",
    "TaskSource",
    "ThreadWorker",
    "Worker",
    "WorkerPool",
    "WorkerPresence",
    "current_task",
    "current_task_or_none",
    "gevent_patched",
    "install_signal_handlers",
    "is_async_callable",
    "require_worker_extra",
]

# Show public names as omniq.workers.X so the private modules can move freely.
publish(globals())
del publish
