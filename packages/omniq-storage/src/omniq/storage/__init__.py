"""OmniQ storage: the four storage contracts and the backends that implement them.

``open_storage(url)`` picks a backend by URL scheme; the embedded ones (memory, file via
fsspec, SQLite) are importable directly, server backends load their drivers lazily.
"""

from __future__ import annotations

from ._backends.file import FileBackend
from ._backends.memory import MemoryBackend
from ._backends.sqlite import SQLiteBackend
from ._factory import BACKENDS, BackendEntry, open_storage, register_backend
from ._interfaces import (
    Backend,
    Completion,
    CompletionReport,
    DependencyPolicy,
    EventStorage,
    LeaseRef,
    PayloadLimit,
    ResultStorage,
    RetryRequest,
    ScheduleRun,
    ScheduleStorage,
    TaskQueueStorage,
)

__all__ = [
    "BACKENDS",
    "Backend",
    "BackendEntry",
    "Completion",
    "CompletionReport",
    "DependencyPolicy",
    "EventStorage",
    "FileBackend",
    "LeaseRef",
    "MemoryBackend",
    "PayloadLimit",
    "ResultStorage",
    "RetryRequest",
    "SQLiteBackend",
    "ScheduleRun",
    "ScheduleStorage",
    "TaskQueueStorage",
    "open_storage",
    "register_backend",
]
