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

from omniq.models import MissingExtraError, StorageError, UnknownBackendError, redact_url

from ._interfaces import Backend

__all__ = [
    "BACKENDS",
    "ENTRY_POINT_GROUP",
    "BackendEntry",
    "backend_class",
    "known_schemes",
    "open_storage",
    "register_backend",
    "reload_backends",
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
    """Scheme -> entry: the entry points (read on first use), under the registrations.

    Writing (``BACKENDS[scheme] = entry``) is the same as ``register_backend``; deleting
    a registered scheme uncovers its entry point, if any.
    """

    def __init__(self) -> None:
        self._declared: dict[str, BackendEntry] | None = None
        self._registered: dict[str, BackendEntry] = {}
        self._lock = threading.Lock()

    def _merged(self) -> dict[str, BackendEntry]:
        declared = self._declared
        if declared is None:
            declared = _from_entry_points()
            with self._lock:
                self._declared = declared
        return {**declared, **self._registered}

    def __getitem__(self, scheme: str) -> BackendEntry:
        key = scheme.lower()
        entry = self._registered.get(key)
        return entry if entry is not None else self._merged()[key]

    def __setitem__(self, scheme: str, entry: BackendEntry) -> None:
        with self._lock:
            self._registered[scheme.lower()] = entry

    def __delitem__(self, scheme: str) -> None:
        key = scheme.lower()
        with self._lock:
            if key in self._registered:
                del self._registered[key]
                return
        if self._declared is not None and key in self._declared:
            raise KeyError(f"{key} is declared by an entry point; register_backend replaces it")
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return iter(self._merged())

    def __len__(self) -> int:
        return len(self._merged())

    def __repr__(self) -> str:
        return f"BACKENDS({self._merged()!r})"

    def reload(self) -> None:
        """Read the entry points again on next use (registrations stay)."""
        with self._lock:
            self._declared = None


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


def reload_backends() -> None:
    """Read the ``omniq.backends`` entry points again on next use (after a distribution
    was installed into the running interpreter); registrations stay."""
    table = BACKENDS
    if isinstance(table, _BackendTable):
        table.reload()


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


def _driver(exc: ImportError) -> str:
    """The top-level module that failed to import: the error's own name, else that of its
    cause (a backend re-raises the driver's ImportError as a MissingExtraError)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ImportError) and seen.name:
            return seen.name.split(".")[0]
        seen = seen.__cause__ or seen.__context__
    return "of its extra"


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
                f"the {scheme}:// backend needs the driver {_driver(exc)}: "
                f"pip install '{entry.install_hint()}'"
                + (
                    " (the omniq distribution installs every driver)"
                    if entry.distribution in (None, "omniq-storage")
                    else ""
                )
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
        raise UnknownBackendError(
            f"no storage backend for {scheme}:// in {redact_url(url)!r}; {_known()}"
        )
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
        raise UnknownBackendError(f"storage URL {redact_url(url)!r} has no scheme; {_known()}")
    return scheme.lower()


def open_storage(url: str, **options: Any) -> Backend:
    """Create the backend for ``url`` (not yet connected: ``async with`` it or await
    ``connect()``). ``options`` go to the backend's constructor."""
    scheme = _scheme(url)
    key, _ = _entry_for(scheme, url)
    factory: Callable[..., Backend] = backend_class(key)
    return factory(url, **options)
