"""``open_storage(url)``: pick a backend by URL scheme, importing its driver lazily.

Schemes: ``memory://`` (in-process), ``sqlite:///path.db``, ``file:///dir`` and
``file+<protocol>://...`` / ``fsspec+<protocol>://...`` (the file backend on any
fsspec filesystem, e.g. ``file+memory://root`` for fsspec's memory FS, which plain
``memory://`` does not mean here), ``postgresql://``/``postgres://``, ``redis://``/
``rediss://`` and ``nats://``. Any other protocol fsspec knows (``s3://``, ``gcs://``,
...) also opens the file backend.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any, NamedTuple

from omniq.models import MissingExtraError, StorageError, UnknownBackendError

from ._interfaces import Backend

__all__ = ["BACKENDS", "BackendEntry", "open_storage", "register_backend"]


class BackendEntry(NamedTuple):
    """Where a backend class lives (``module:Class``) and the extra that installs its driver."""

    target: str
    extra: str | None = None


BACKENDS: dict[str, BackendEntry] = {
    "memory": BackendEntry("omniq.storage._backends.memory:MemoryBackend"),
    "file": BackendEntry("omniq.storage._backends.file:FileBackend"),
    "sqlite": BackendEntry("omniq.storage._backends.sqlite:SQLiteBackend"),
    "postgresql": BackendEntry(
        "omniq.storage._backends.postgres._backend:PostgresBackend", "postgres"
    ),
    "postgres": BackendEntry(
        "omniq.storage._backends.postgres._backend:PostgresBackend", "postgres"
    ),
    "redis": BackendEntry("omniq.storage._backends.redis._backend:RedisBackend", "redis"),
    "rediss": BackendEntry("omniq.storage._backends.redis._backend:RedisBackend", "redis"),
    "nats": BackendEntry("omniq.storage._backends.nats._backend:NatsBackend", "nats"),
}
"""URL scheme -> backend. Backend classes are constructed as ``cls(url, **options)``."""

_FILE_PREFIXES = ("file+", "fsspec+")


def register_backend(scheme: str, target: str, extra: str | None = None) -> None:
    """Add (or replace) the backend for ``scheme`` (``target`` is ``module:Class``)."""
    BACKENDS[scheme.lower()] = BackendEntry(target, extra)


def _scheme(url: str) -> str:
    scheme, sep, _ = url.partition("://")
    if not sep:
        raise UnknownBackendError(f"storage URL {url!r} has no scheme; {_known()}")
    return scheme.lower()


def _known() -> str:
    return (
        "known schemes: "
        + ", ".join(f"{s}://" for s in sorted(BACKENDS))
        + ", file+<fsspec protocol>://, or any fsspec protocol (s3://, gcs://, ...)"
    )


def _is_fsspec_protocol(scheme: str) -> bool:
    try:
        import fsspec
    except ImportError:  # pragma: no cover - fsspec is a dependency
        return False
    return scheme in fsspec.available_protocols()


def _load(scheme: str, entry: BackendEntry) -> type[Backend]:
    module_name, _, attr = entry.target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        if exc.name is not None and exc.name == module_name:
            raise StorageError(
                f"the {scheme}:// backend ({module_name}) is not part of this omniq-storage build"
            ) from exc
        if entry.extra is None:
            raise
        raise MissingExtraError(
            f"the {scheme}:// backend needs the driver {exc.name or '?'}: "
            f"pip install 'omniq-storage[{entry.extra}]'"
        ) from exc
    cls = getattr(module, attr)
    if not (isinstance(cls, type) and issubclass(cls, Backend)):
        raise StorageError(f"{entry.target} is not a storage Backend")
    return cls


def open_storage(url: str, **options: Any) -> Backend:
    """Create the backend for ``url`` (not yet connected: ``async with`` it or await
    ``connect()``). ``options`` go to the backend's constructor."""
    scheme = _scheme(url)
    entry = BACKENDS.get(scheme)
    if entry is None and (scheme.startswith(_FILE_PREFIXES) or _is_fsspec_protocol(scheme)):
        entry = BACKENDS["file"]
    if entry is None:
        raise UnknownBackendError(f"no storage backend for {scheme}:// in {url!r}; {_known()}")
    factory: Callable[..., Backend] = _load(scheme, entry)
    return factory(url, **options)
