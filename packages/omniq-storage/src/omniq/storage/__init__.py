"""OmniQ storage: the four storage contracts and the backends that implement them.

``open_storage(url)`` picks a backend by URL scheme from the ``omniq.backends``
entry-point group (``register_backend`` adds one at run time); the embedded ones
(memory, file via fsspec, SQLite) are importable directly, server backends load their
drivers lazily. ``store_urls(settings)`` is where every store lives by default.
``omniq.storage.testing`` (extra ``testing``) is the conformance suite a backend runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from omniq.models.lowlevel import publish

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

if TYPE_CHECKING:
    from ._backends.file import FileBackend
    from ._backends.memory import MemoryBackend
    from ._backends.sqlite import SQLiteBackend

_LAZY = {
    "FileBackend": "._backends.file",
    "MemoryBackend": "._backends.memory",
    "SQLiteBackend": "._backends.sqlite",
}
"""Exported names loaded on first use: the embedded backends (``sqlite3``, the file
backend's journal) are no part of a worker on a server."""


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    obj = getattr(importlib.import_module(_LAZY[name], __name__), name)
    publish({"__name__": __name__, "__all__": [name], name: obj})
    globals()[name] = obj
    return obj


# Show public names as omniq.storage.X so the private modules can move freely.
publish({**globals(), "__all__": [n for n in __all__ if n not in _LAZY]})
