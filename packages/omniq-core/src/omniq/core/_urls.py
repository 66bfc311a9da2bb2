"""Where OmniQ's stores live: explicit arguments, then OMNIQ_* settings, then the
default of the configured backend type. The rules themselves are ``omniq.storage``'s
(``store_urls``), so the facade, the event logger and the CLI agree."""

from __future__ import annotations

from omniq.config import Settings
from omniq.storage import default_url as _storage_default_url
from omniq.storage import store_urls

__all__ = ["default_url", "resolve_urls"]


def default_url(kind: str, settings: Settings, what: str = "task_queue") -> str:
    """The URL the backend type ``kind`` uses for the store ``what`` when no URL was
    configured (``omniq.storage.default_url``)."""
    return _storage_default_url(kind, settings, what)


def resolve_urls(
    settings: Settings, *, tasks: str | None = None
) -> tuple[str, str | None, str | None]:
    """``(task queue, results, events)`` URLs from settings; None means "same as the task
    queue" for results and "disabled" for events (``omniq.storage.store_urls``).
    ``tasks``: the task queue's URL when the caller gives one."""
    urls = store_urls(settings, tasks=tasks)
    return urls.tasks, urls.results, urls.events
