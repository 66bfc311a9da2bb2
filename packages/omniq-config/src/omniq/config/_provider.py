"""``ConfigProvider``: layered, validated settings that can change at runtime."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any

from ._env import EnvConfig
from ._settings import Settings

__all__ = ["ConfigProvider", "Listener", "get_provider", "get_settings", "set_provider"]

Listener = Callable[[Settings, Settings], None]
"""Called with ``(old, new)`` after the provider's settings changed."""

_log = logging.getLogger("omniq.config")


class ConfigProvider:
    """Holds the current Settings: constants < ``OMNIQ_*`` environment < explicit overrides.

    ``env`` is the environment mapping to read (``None`` means ``os.environ``; pass ``{}``
    to ignore it). ``update()`` validates changes and swaps the whole Settings at once, so
    readers of ``settings`` never see a half-applied change; subscribers then hear about it.
    """

    def __init__(self, env: Mapping[str, str] | None = None, **overrides: Any) -> None:
        self._env = EnvConfig(env)
        self._overrides = dict(overrides)
        self._lock = threading.RLock()
        self._listeners: list[Listener] = []
        self._settings = self._env.settings(**self._overrides)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> ConfigProvider:
        """A provider reading ``os.environ`` (or ``env``), with optional overrides on top."""
        return cls(env, **overrides)

    @property
    def settings(self) -> Settings:
        """The current, validated settings (an immutable snapshot)."""
        return self._settings

    def update(self, **changes: Any) -> Settings:
        """Validate ``changes`` and make them current; raises ConfigError and changes nothing
        if any value is bad. Changes count as explicit overrides and survive ``reload()``."""
        with self._lock:
            old = self._settings
            new = old.replace(**changes)
            self._overrides.update(changes)
            self._swap(old, new)
            return new

    def reload(self) -> Settings:
        """Re-read the environment (keeping explicit overrides) and make the result current."""
        with self._lock:
            old = self._settings
            new = self._env.settings(**self._overrides)
            self._swap(old, new)
            return new

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener(old, new)`` after every change; returns a function to unsubscribe.

        Listeners run in the changing thread, in subscription order; one that raises is
        logged and does not stop the others.
        """
        with self._lock:
            self._listeners.append(listener)

        def unsubscribe() -> None:
            with self._lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return unsubscribe

    def _swap(self, old: Settings, new: Settings) -> None:
        self._settings = new
        if new == old:
            return
        for listener in list(self._listeners):
            try:
                listener(old, new)
            except Exception:
                _log.exception("settings listener %r failed", listener)


_default: ConfigProvider | None = None
_default_lock = threading.Lock()


def get_provider() -> ConfigProvider:
    """The process-wide provider, created from ``os.environ`` on first use."""
    global _default
    with _default_lock:
        if _default is None:
            _default = ConfigProvider()
        return _default


def set_provider(provider: ConfigProvider | None) -> None:
    """Replace the process-wide provider (``None``: recreate from the environment lazily)."""
    global _default
    with _default_lock:
        _default = provider


def get_settings() -> Settings:
    """The process-wide current settings."""
    return get_provider().settings
