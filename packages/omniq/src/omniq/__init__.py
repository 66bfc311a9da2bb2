"""OmniQ: a Python task queue, embedded in one process or spread over many hosts.

This umbrella package re-exports the public API of the OmniQ distributions lazily:
``import omniq`` is cheap, and ``omniq.Task`` imports ``omniq.models`` on first use.
The subpackages (``omniq.models``, ``omniq.config``, ...) are separate distributions
sharing the ``omniq`` namespace.
"""

from __future__ import annotations

import importlib
from pkgutil import extend_path
from typing import TYPE_CHECKING, Any

# Let the other distributions' portions (omniq.models, ...) live beside this package.
__path__ = extend_path(__path__, __name__)

# public name -> module that defines it
_EXPORTS: dict[str, str] = {
    # omniq.models
    "Task": "omniq.models",
    "TaskResult": "omniq.models",
    "TaskEvent": "omniq.models",
    "Schedule": "omniq.models",
    "QueueInfo": "omniq.models",
    "LimitInfo": "omniq.models",
    "TaskStatus": "omniq.models",
    "EventType": "omniq.models",
    "WorkerType": "omniq.models",
    "WorkerInfo": "omniq.models",
    "ErrorInfo": "omniq.models",
    "OmniQError": "omniq.models",
    "ConfigError": "omniq.models",
    "SerializationError": "omniq.models",
    "StorageError": "omniq.models",
    "TaskTimeoutError": "omniq.models",
    "TransactionalEnqueueError": "omniq.models",
    "DependencyError": "omniq.models",
    "DependencyCycleError": "omniq.models",
    "ScheduleError": "omniq.models",
    "BackendUnavailableError": "omniq.models",
    "UnknownBackendError": "omniq.models",
    "MissingExtraError": "omniq.models",
    "RemoteTaskError": "omniq.models",
    # omniq.config
    "Settings": "omniq.config",
    "ConfigProvider": "omniq.config",
    # omniq.serialization
    "SerializationManager": "omniq.serialization",
    # omniq.models (more errors)
    "TaskExpiredError": "omniq.models",
    "TaskCancelledError": "omniq.models",
    "WorkerCrashedError": "omniq.models",
    "InvalidTaskError": "omniq.models",
    # omniq.storage
    "open_storage": "omniq.storage",
    # omniq.queue
    "AsyncTaskQueue": "omniq.queue",
    "TaskQueue": "omniq.queue",
    "RetryManager": "omniq.queue",
    "RetryPolicy": "omniq.queue",
    "CircuitBreaker": "omniq.queue",
    "BreakerRegistry": "omniq.queue",
    "DependencyResolver": "omniq.queue",
    "TTLManager": "omniq.queue",
    "AsyncScheduler": "omniq.queue",
    "Scheduler": "omniq.queue",
    # omniq.core
    "OmniQ": "omniq.core",
    "DeadLetter": "omniq.core",
    "TaskFunction": "omniq.core",
    # the running task's context and in-task control
    "current_task": "omniq.core",
    "TaskContext": "omniq.core",
    "Progress": "omniq.models",
    "Retry": "omniq.models",
    "Fail": "omniq.models",
    "NotInTaskError": "omniq.models",
    # testing: inline mode's error and the clock tests move
    "TaskFailedError": "omniq.models",
    "ManualClock": "omniq.models",
    # chains and groups
    "Group": "omniq.models",
    "GroupStatus": "omniq.models",
    "WorkflowError": "omniq.models",
}

__all__ = [
    "AsyncScheduler",
    "AsyncTaskQueue",
    "BackendUnavailableError",
    "BreakerRegistry",
    "CircuitBreaker",
    "ConfigError",
    "ConfigProvider",
    "DeadLetter",
    "DependencyCycleError",
    "DependencyError",
    "DependencyResolver",
    "ErrorInfo",
    "EventType",
    "Fail",
    "Group",
    "GroupStatus",
    "InvalidTaskError",
    "LimitInfo",
    "ManualClock",
    "MissingExtraError",
    "NotInTaskError",
    "OmniQ",
    "OmniQError",
    "Progress",
    "QueueInfo",
    "RemoteTaskError",
    "Retry",
    "RetryManager",
    "RetryPolicy",
    "Schedule",
    "ScheduleError",
    "Scheduler",
    "SerializationError",
    "SerializationManager",
    "Settings",
    "StorageError",
    "TTLManager",
    "Task",
    "TaskCancelledError",
    "TaskContext",
    "TaskEvent",
    "TaskExpiredError",
    "TaskFailedError",
    "TaskFunction",
    "TaskQueue",
    "TaskResult",
    "TaskStatus",
    "TaskTimeoutError",
    "TransactionalEnqueueError",
    "UnknownBackendError",
    "WorkerCrashedError",
    "WorkerInfo",
    "WorkerType",
    "WorkflowError",
    "__version__",
    "current_task",
    "open_storage",
]

if TYPE_CHECKING:
    from omniq.config import ConfigProvider, Settings
    from omniq.core import DeadLetter, OmniQ, TaskContext, TaskFunction, current_task
    from omniq.models import (
        BackendUnavailableError,
        ConfigError,
        DependencyCycleError,
        DependencyError,
        ErrorInfo,
        EventType,
        Fail,
        Group,
        GroupStatus,
        InvalidTaskError,
        LimitInfo,
        ManualClock,
        MissingExtraError,
        NotInTaskError,
        OmniQError,
        Progress,
        QueueInfo,
        RemoteTaskError,
        Retry,
        Schedule,
        ScheduleError,
        SerializationError,
        StorageError,
        Task,
        TaskCancelledError,
        TaskEvent,
        TaskExpiredError,
        TaskFailedError,
        TaskResult,
        TaskStatus,
        TaskTimeoutError,
        TransactionalEnqueueError,
        UnknownBackendError,
        WorkerCrashedError,
        WorkerInfo,
        WorkerType,
        WorkflowError,
    )
    from omniq.queue import (
        AsyncScheduler,
        AsyncTaskQueue,
        BreakerRegistry,
        CircuitBreaker,
        DependencyResolver,
        RetryManager,
        RetryPolicy,
        Scheduler,
        TaskQueue,
        TTLManager,
    )
    from omniq.serialization import SerializationManager
    from omniq.storage import open_storage

    __version__: str


def _version() -> str:
    """This distribution's version, from its installed metadata (one source: pyproject)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("omniq")
    except PackageNotFoundError:  # the sources imported without being installed
        return "0+unknown"


def __getattr__(name: str) -> Any:
    if name == "__version__":
        value = _version()
        globals()[name] = value
        return value
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'omniq' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # cache: later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
