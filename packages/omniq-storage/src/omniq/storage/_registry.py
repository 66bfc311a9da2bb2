"""The backend registry: URL scheme -> backend class, and ``open_storage(url)``.

Backends are declared in the ``omniq.backends`` entry-point group, one entry per URL
scheme, ``scheme = "module:Class [extra]"``: the class is imported only when a URL with
that scheme is opened, and ``[extra]`` names the extra of the declaring distribution
that installs the backend's driver. ``register_backend`` adds or replaces an entry at
run time (it wins over the entry points). A scheme no entry names opens the file
backend when it is ``file+<protocol>``/``fsspec+<protocol>`` or a protocol fsspec
knows (``s3``, ``gcs``...); plain ``memory://`` is the in-process memory backend.
"""

from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import Callable, Iterator, MutableMapping
from importlib.metadata import entry_points
from typing import Any, NamedTuple

from omniq.models import MissingExtraError, StorageError, UnknownBackendError

from ._interfaces import Backend

__all__ = [
    "BACKENDS",
    "ENTRY_POINT_GROUP",
    "BackendEntry",
    "backend_class",
    "known_schemes",
    "open_storage",
    "register_backend",
]

ENTRY_POINT_GROUP = "omniq.backends"
"""The entry-point group a distribution declares its backends in."""

_FILE_PREFIXES = ("file+", "fsspec+")
_log = logging.getLogger("omniq.storage")


class BackendEntry(NamedTuple):
    """Where a backend class lives and what installs its driver.

    ``target`` is ``"module:Class"`` or the class itself; ``extra`` the extra that
    installs the driver, of ``distribution`` (``omniq-storage`` when not given).
    """

    target: str | type[Backend]
    extra: str | None = None
    distribution: str | None = None

    def install_hint(self) -> str:
        """The pip requirement that installs this backend's driver."""
        dist = self.distribution or "omniq-storage"
        return f"{dist}[{self.extra}]" if self.extra else dist


class _BackendTable(MutableMapping[str, BackendEntry]):
    """Scheme -> entry: the entry points, read once on first use, then registrations.

    Writing (``BACKENDS[scheme] = entry``) is the same as ``register_backend``.
    """

    def __init__(self) -> None:
        self._entries: dict[str, BackendEntry] = {}
        self._loaded = False
        self._lock = threading.Lock()

    def _ensure(self) -> dict[str, BackendEntry]:
        if not self._loaded:
            with self._lock:
                if not self._loaded:
                    found = _from_entry_points()
                    found.update(self._entries)  # run-time registrations win
                    self._entries = found
                    self._loaded = True
        return self._entries

    def __getitem__(self, scheme: str) -> BackendEntry:
        return self._ensure()[scheme.lower()]

    def __setitem__(self, scheme: str, entry: BackendEntry) -> None:
        with self._lock:
            self._entries[scheme.lower()] = entry

    def __delitem__(self, scheme: str) -> None:
        self._ensure()
        with self._lock:
            del self._entries[scheme.lower()]

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._ensure()))

    def __len__(self) -> int:
        return len(self._ensure())

    def __repr__(self) -> str:
        return f"BACKENDS({dict(self._ensure())!r})"

    def reload(self) -> None:
        """Forget what was read from the entry points (registrations stay)."""
        with self._lock:
            self._loaded = False


def _from_entry_points() -> dict[str, BackendEntry]:
    found: dict[str, BackendEntry] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        dist = ep.dist.name if ep.dist is not None else None
        entry = BackendEntry(f"{ep.module}:{ep.attr}", ep.extras[0] if ep.extras else None, dist)
        scheme = ep.name.lower()
        previous = found.get(scheme)
        if previous is not None and previous.target != entry.target:
            _log.warning(
                "two distributions declare the %s:// backend (%s from %s, %s from %s); "
                "using the first: call register_backend to choose",
                scheme,
                previous.target,
                previous.distribution,
                entry.target,
                entry.distribution,
            )
            continue
        found[scheme] = entry
    return found


BACKENDS: MutableMapping[str, BackendEntry] = _BackendTable()
"""URL scheme -> backend. Backend classes are constructed as ``cls(url, **options)``."""

_classes: dict[str, tuple[BackendEntry, type[Backend]]] = {}
_classes_lock = threading.Lock()


def register_backend(
    scheme: str,
    target: str | type[Backend],
    extra: str | None = None,
    *,
    distribution: str | None = None,
) -> None:
    """Add (or replace) the backend for ``scheme``.

    ``target`` is the class or ``"module:Class"``; ``extra`` the extra of
    ``distribution`` that installs its driver (named in MissingExtraError). This is the
    run-time twin of an ``omniq.backends`` entry point and wins over one.
    """
    BACKENDS[scheme] = BackendEntry(target, extra, distribution)


def _known() -> str:
    return (
        "known schemes: "
        + ", ".join(f"{s}://" for s in sorted(BACKENDS))
        + ", file+<fsspec protocol>://, or any fsspec protocol (s3://, gcs://, ...)"
    )


def known_schemes() -> list[str]:
    """The schemes with a registered backend, sorted."""
    return sorted(BACKENDS)


def _is_fsspec_protocol(scheme: str) -> bool:
    try:
        import fsspec
    except ImportError:  # pragma: no cover - fsspec is a dependency
        return False
    return scheme in fsspec.available_protocols()


def _import(scheme: str, entry: BackendEntry) -> type[Backend]:
    target = entry.target
    if not isinstance(target, str):
        cls: object = target
    else:
        module_name, _, attr = target.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            if exc.name is not None and exc.name == module_name:
                raise StorageError(
                    f"the {scheme}:// backend ({module_name}) is not installed"
                    + (f": pip install '{entry.install_hint()}'" if entry.distribution else "")
                ) from exc
            if entry.extra is None:
                raise
            raise MissingExtraError(
                f"the {scheme}:// backend needs the driver {exc.name or '?'}: "
                f"pip install '{entry.install_hint()}'"
            ) from exc
        cls = module
        for part in attr.split("."):
            cls = getattr(cls, part, None)
    if not (isinstance(cls, type) and issubclass(cls, Backend)):
        raise StorageError(f"{target!r} (the {scheme}:// backend) is not a storage Backend")
    return cls


def _entry_for(scheme: str, url: str) -> tuple[str, BackendEntry]:
    entry = BACKENDS.get(scheme)
    if entry is None and (scheme.startswith(_FILE_PREFIXES) or _is_fsspec_protocol(scheme)):
        return "file", BACKENDS["file"]
    if entry is None:
        raise UnknownBackendError(f"no storage backend for {scheme}:// in {url!r}; {_known()}")
    return scheme, entry


def backend_class(scheme: str) -> type[Backend]:
    """The backend class for ``scheme`` (imported on first use).

    Raises UnknownBackendError (listing the known schemes) when no backend handles the
    scheme, MissingExtraError (naming the extra) when its driver is not installed.
    """
    key, entry = _entry_for(scheme.lower(), f"{scheme}://")
    with _classes_lock:
        cached = _classes.get(key)
    if cached is not None and cached[0] == entry:
        return cached[1]
    cls = _import(key, entry)
    with _classes_lock:
        _classes[key] = (entry, cls)
    return cls


def _scheme(url: str) -> str:
    scheme, sep, _ = url.partition("://")
    if not sep:
        raise UnknownBackendError(f"storage URL {url!r} has no scheme; {_known()}")
    return scheme.lower()


def open_storage(url: str, **options: Any) -> Backend:
    """Create the backend for ``url`` (not yet connected: ``async with`` it or await
    ``connect()``). ``options`` go to the backend's constructor."""
    scheme = _scheme(url)
    key, _ = _entry_for(scheme, url)
    factory: Callable[..., Backend] = backend_class(key)
    return factory(url, **options)
