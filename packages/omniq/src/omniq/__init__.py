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

__version__ = "0.2.0"

# public name -> module that defines it
_EXPORTS: dict[str, str] = {
    # omniq.models
    "Task": "omniq.models",
    "TaskResult": "omniq.models",
    "TaskEvent": "omniq.models",
    "Schedule": "omniq.models",
    "TaskStatus": "omniq.models",
    "EventType": "omniq.models",
    "WorkerType": "omniq.models",
    "ErrorInfo": "omniq.models",
    "OmniQError": "omniq.models",
    "ConfigError": "omniq.models",
    "SerializationError": "omniq.models",
    "StorageError": "omniq.models",
    "TaskTimeoutError": "omniq.models",
    "DependencyCycleError": "omniq.models",
    # omniq.config
    "Settings": "omniq.config",
    "ConfigProvider": "omniq.config",
    # omniq.serialization
    "SerializationManager": "omniq.serialization",
    # omniq.models (more errors)
    "TaskNotFoundError": "omniq.models",
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
    # omniq.core
    "OmniQ": "omniq.core",
}

__all__ = [
    "AsyncTaskQueue",
    "BreakerRegistry",
    "CircuitBreaker",
    "ConfigError",
    "ConfigProvider",
    "DependencyCycleError",
    "DependencyResolver",
    "ErrorInfo",
    "EventType",
    "InvalidTaskError",
    "OmniQ",
    "OmniQError",
    "RetryManager",
    "RetryPolicy",
    "Schedule",
    "SerializationError",
    "SerializationManager",
    "Settings",
    "StorageError",
    "TTLManager",
    "Task",
    "TaskCancelledError",
    "TaskEvent",
    "TaskExpiredError",
    "TaskNotFoundError",
    "TaskQueue",
    "TaskResult",
    "TaskStatus",
    "TaskTimeoutError",
    "WorkerCrashedError",
    "WorkerType",
    "__version__",
    "open_storage",
]

if TYPE_CHECKING:
    from omniq.config import ConfigProvider, Settings
    from omniq.core import OmniQ
    from omniq.models import (
        ConfigError,
        DependencyCycleError,
        ErrorInfo,
        EventType,
        InvalidTaskError,
        OmniQError,
        Schedule,
        SerializationError,
        StorageError,
        Task,
        TaskCancelledError,
        TaskEvent,
        TaskExpiredError,
        TaskNotFoundError,
        TaskResult,
        TaskStatus,
        TaskTimeoutError,
        WorkerCrashedError,
        WorkerType,
    )
    from omniq.queue import (
        AsyncTaskQueue,
        BreakerRegistry,
        CircuitBreaker,
        DependencyResolver,
        RetryManager,
        RetryPolicy,
        TaskQueue,
        TTLManager,
    )
    from omniq.serialization import SerializationManager
    from omniq.storage import open_storage


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'omniq' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # cache: later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
