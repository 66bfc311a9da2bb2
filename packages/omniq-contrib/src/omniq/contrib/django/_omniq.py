"""The process's ``OmniQ`` built from Django settings, and the enqueue helpers."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections, transaction

from omniq.core import OmniQ
from omniq.models import ConfigError, Task
from omniq.queue import TaskSpec

__all__ = ["enqueue_in_transaction", "enqueue_on_commit", "get_omniq", "omniq_from_settings"]

_STORES = {"TASK_QUEUE": "task_queue", "RESULT_STORAGE": "result_storage"}
_STORES["EVENT_STORAGE"] = "event_storage"
_lock = threading.Lock()
_instance: OmniQ | None = None


def omniq_from_settings(config: Mapping[str, Any] | None = None) -> OmniQ:
    """A new ``OmniQ`` from ``settings.OMNIQ`` (or ``config``): ``TASK_QUEUE``,
    ``RESULT_STORAGE``, ``EVENT_STORAGE`` are store URLs; every other key is an OmniQ
    setting in upper case (``RESULT_TTL``, ``MAX_WORKERS``...). Settings not given come
    from the ``OMNIQ_*`` environment, as for ``OmniQ()``."""
    raw = getattr(settings, "OMNIQ", {}) if config is None else config
    if not isinstance(raw, Mapping):
        raise ConfigError("OMNIQ", raw, "a dict such as {'TASK_QUEUE': 'sqlite:///q.db'}")
    stores: dict[str, Any] = {}
    overrides: dict[str, Any] = {}
    for key, value in raw.items():
        name = str(key).upper()
        if name in _STORES:
            stores[_STORES[name]] = value
        else:
            overrides[name.lower()] = value
    return OmniQ(**stores, **overrides)


def get_omniq(*, wait: float = 0.0) -> OmniQ:
    """This process's ``OmniQ``, built from ``settings.OMNIQ`` and opened at the first
    call. Opened at once, not at its first enqueue: on SQLite, opening it inside a
    transaction that already writes would wait for that transaction's lock.

    ``wait``: at the call that opens it, seconds to keep trying while a store is
    unreachable (``OmniQ.open_sync``'s ``wait``; ``manage.py omniq_worker
    --store-wait``). A call that fails leaves nothing behind: the next one tries again.
    """
    global _instance
    with _lock:
        if _instance is None:
            oq = omniq_from_settings()
            try:
                _instance = oq.open_sync(wait=wait)
            except BaseException:
                oq.close_sync()
                raise
        return _instance


def enqueue_in_transaction(
    func: TaskSpec,
    args: Sequence[Any] = (),
    kwargs: Mapping[str, Any] | None = None,
    *,
    using: str | None = None,
    **options: Any,
) -> Task:
    """Enqueue through Django's own database connection (``using``, default
    ``"default"``): inside ``transaction.atomic()`` the task is written in that
    transaction and exists only if it commits. The task store must live in that
    database (PostgreSQL through psycopg 3, or the same SQLite file); any other raises
    ``TransactionalEnqueueError``: use ``enqueue_on_commit`` there."""
    conn = connections[using or DEFAULT_DB_ALIAS]
    conn.ensure_connection()
    return get_omniq().enqueue_sync(func, args, kwargs, connection=conn.connection, **options)


def enqueue_on_commit(
    func: TaskSpec,
    args: Sequence[Any] = (),
    kwargs: Mapping[str, Any] | None = None,
    *,
    using: str | None = None,
    robust: bool = False,
    **options: Any,
) -> Task:
    """Enqueue when the current transaction of ``using`` commits (at once outside a
    transaction); nothing when it rolls back. Works with every task store. The task is
    built now, so bad arguments fail here, and returned unstored: its ``id`` is the id
    the stored task will have. ``robust``: as for ``transaction.on_commit``."""
    oq = get_omniq()
    task = oq.build(func, args, kwargs, **options)
    transaction.on_commit(lambda: oq.enqueue_many_sync([task]), using=using, robust=robust)
    return task
