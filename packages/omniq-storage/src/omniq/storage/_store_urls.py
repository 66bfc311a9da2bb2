"""Where each store lives: the one answer every OmniQ component uses.

A store's URL is its ``OMNIQ_*_URL`` setting when set; otherwise its ``OMNIQ_*_TYPE``
names a backend (an ``omniq.backends`` scheme) and that backend's default-URL rule
gives the URL. A backend class declares the rule as a classmethod
``default_url(settings, store) -> str | None`` (None: it has no embedded default, a URL
must be configured). The embedded backends declare defaults under ``BASE_DIR``:
``memory://``, ``sqlite:///$BASE_DIR/omniq.db`` and ``$FSSPEC_URI`` or
``file://$BASE_DIR/store``. Every store of one backend type defaults to the same place,
so an event store of the task queue's type is the task queue's own store.
"""

from __future__ import annotations

from typing import Literal, NamedTuple, get_args

from omniq.config import Settings
from omniq.models import ConfigError

from ._registry import BACKENDS, backend_class

__all__ = ["StoreKind", "StoreUrls", "default_url", "event_store_url", "store_urls"]

StoreKind = Literal["task_queue", "result_storage", "event_storage"]
"""The stores a setting configures (schedules live in the task queue's store)."""

_KINDS: tuple[str, ...] = get_args(StoreKind)


class StoreUrls(NamedTuple):
    """The URLs of OmniQ's stores for one ``Settings``."""

    tasks: str
    """The task queue (always set)."""
    results: str | None
    """Results; None: the task queue's store holds them."""
    events: str | None
    """Task events; None: event logging is disabled."""

    @property
    def schedules(self) -> str:
        """Schedules live in the task queue's store."""
        return self.tasks


def _var(store: str, suffix: str) -> str:
    return f"OMNIQ_{store.upper()}_{suffix}"


def default_url(backend_type: str, settings: Settings, store: str = "task_queue") -> str:
    """The URL the backend named ``backend_type`` uses for ``store`` (a ``StoreKind``)
    when none is configured.

    Raises ConfigError naming ``OMNIQ_<STORE>_TYPE`` when no backend has that name, and
    ``OMNIQ_<STORE>_URL`` when the backend has no embedded default (server backends).
    """
    if store not in _KINDS:
        raise ConfigError("store", store, "one of " + ", ".join(_KINDS))
    kind = backend_type.lower()
    if kind not in BACKENDS:
        known = ", ".join(sorted(BACKENDS))
        raise ConfigError(_var(store, "TYPE"), backend_type, f"a known backend type: {known}")
    url = backend_class(kind).default_url(settings, store)
    if not url:
        raise ConfigError(
            _var(store, "URL"), "", f"a {kind} connection URL when {_var(store, 'TYPE')}={kind}"
        )
    return url


def store_urls(settings: Settings, *, tasks: str | None = None) -> StoreUrls:
    """Every store's URL from ``settings`` (explicit URLs first, then backend defaults).

    ``tasks``: the task queue's URL when the caller names it; the settings' own task
    queue URL is then resolved only if the event store follows it, so the default
    backend (and its driver) is not imported for nothing.
    """
    s = settings
    own = None
    if tasks is None:
        tasks = own = s.task_queue_url or default_url(s.task_queue_type, s, "task_queue")
    results: str | None = s.result_storage_url or None
    if results is None and s.result_storage_type and s.result_storage_type != s.task_queue_type:
        results = default_url(s.result_storage_type, s, "result_storage")
    return StoreUrls(tasks, results, event_store_url(s, tasks=own) or None)


def event_store_url(settings: Settings, *, tasks: str | None = None) -> str:
    """The event store's URL; empty when event logging is disabled.

    An event store of the task queue's backend type without a URL of its own is the
    task queue's store (``tasks``, computed from ``settings`` when not given).
    """
    s = settings
    if not s.event_storage_type:
        return ""
    if s.event_storage_url:
        return s.event_storage_url
    if s.event_storage_type == s.task_queue_type:
        return tasks or s.task_queue_url or default_url(s.task_queue_type, s, "task_queue")
    return default_url(s.event_storage_type, s, "event_storage")
