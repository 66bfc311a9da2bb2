"""Where OmniQ's three stores live: explicit arguments, then OMNIQ_* settings, then the
embedded default (SQLite under BASE_DIR)."""

from __future__ import annotations

from pathlib import Path

from omniq.config import Settings
from omniq.models import ConfigError

__all__ = ["default_url", "resolve_urls"]

_SERVERS = {"postgres", "redis", "nats"}


def default_url(kind: str, settings: Settings, what: str) -> str:
    """The URL an embedded backend ``kind`` uses when no URL was configured."""
    base = Path(settings.base_dir).expanduser().resolve()
    if kind == "memory":
        return "memory://"
    if kind == "sqlite":
        return f"sqlite:///{base / 'omniq.db'}"
    if kind == "file":
        return settings.fsspec_uri or f"file://{base / 'store'}"
    if kind in _SERVERS:
        var = f"OMNIQ_{what.upper()}_URL"
        raise ConfigError(var, "", f"a {kind} connection URL when OMNIQ_{what.upper()}_TYPE={kind}")
    raise ConfigError(f"OMNIQ_{what.upper()}_TYPE", kind, "a known backend type")


def resolve_urls(settings: Settings) -> tuple[str, str | None, str | None]:
    """``(task queue, results, events)`` URLs from settings; None means "same as the task
    queue" for results and "disabled" for events."""
    s = settings
    tasks = s.task_queue_url or default_url(s.task_queue_type, s, "task_queue")
    results: str | None = s.result_storage_url or None
    if results is None and s.result_storage_type and s.result_storage_type != s.task_queue_type:
        results = default_url(s.result_storage_type, s, "result_storage")
    events: str | None = s.event_storage_url or None
    if events is None and s.event_storage_type:
        events = (
            tasks
            if s.event_storage_type == s.task_queue_type
            else default_url(s.event_storage_type, s, "event_storage")
        )
    return tasks, results, events
