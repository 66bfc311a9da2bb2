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

__version__ = "0.1.0"

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
}

__all__ = [
    "ConfigError",
    "ConfigProvider",
    "DependencyCycleError",
    "ErrorInfo",
    "EventType",
    "OmniQError",
    "Schedule",
    "SerializationError",
    "SerializationManager",
    "Settings",
    "StorageError",
    "Task",
    "TaskEvent",
    "TaskResult",
    "TaskStatus",
    "TaskTimeoutError",
    "WorkerType",
    "__version__",
]

if TYPE_CHECKING:
    from omniq.config import ConfigProvider, Settings
    from omniq.models import (
        ConfigError,
        DependencyCycleError,
        ErrorInfo,
        EventType,
        OmniQError,
        Schedule,
        SerializationError,
        StorageError,
        Task,
        TaskEvent,
        TaskResult,
        TaskStatus,
        TaskTimeoutError,
        WorkerType,
    )
    from omniq.serialization import SerializationManager


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'omniq' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # cache: later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
