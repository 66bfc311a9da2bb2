"""OmniQ storage: the four storage contracts and the backends that implement them.

``open_storage(url)`` picks a backend by URL scheme from the ``omniq.backends``
entry-point group (``register_backend`` adds one at run time); the embedded ones
(memory, file via fsspec, SQLite) are importable directly, server backends load their
drivers lazily. ``store_urls(settings)`` is where every store lives by default.
``omniq.storage.testing`` (extra ``testing``) is the conformance suite a backend runs.
"""

from __future__ import annotations

from omniq.models.lowlevel import publish

from ._backends.file import FileBackend
from ._backends.memory import MemoryBackend
from ._backends.sqlite import SQLiteBackend
from ._interfaces import (
    CASCADE_REASON,
    Backend,
    Completion,
    CompletionReport,
    DependencyPolicy,
    EventStorage,
    LeaseRef,
    PayloadLimit,
    ProgressUpdate,
    ResultRecord,
    ResultStorage,
    RetryRequest,
    ScheduleRun,
    ScheduleStorage,
    TaskQueueStorage,
    WorkerRegistry,
)
from ._registry import (
    BACKENDS,
    ENTRY_POINT_GROUP,
    BackendEntry,
    backend_class,
    known_schemes,
    open_storage,
    register_backend,
    reload_backends,
)
from ._store_urls import StoreKind, StoreUrls, default_url, event_store_url, store_urls

__all__ = [
    "BACKENDS",
    "CASCADE_REASON",
    "ENTRY_POINT_GROUP",
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
    "ProgressUpdate",
    "ResultRecord",
    "ResultStorage",
    "RetryRequest",
    "SQLiteBackend",
    "ScheduleRun",
    "ScheduleStorage",
    "StoreKind",
    "StoreUrls",
    "TaskQueueStorage",
    "WorkerRegistry",
    "backend_class",
    "default_url",
    "event_store_url",
    "known_schemes",
    "open_storage",
    "register_backend",
    "reload_backends",
    "store_urls",
]

# Show public names as omniq.storage.X so the private modules can move freely.
publish(globals())
del publish
