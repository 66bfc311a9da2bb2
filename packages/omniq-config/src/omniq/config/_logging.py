"""Library logging for the ``omniq`` logger hierarchy (not the task event log)."""

from __future__ import annotations

import logging
import threading

import msgspec

from ._settings import FIELD_RULES, Settings

__all__ = ["SILENT", "LoggingConfig", "get_logger"]

ROOT = "omniq"
SILENT = logging.CRITICAL + 10
"""Level above every real one: a logger set to it emits nothing."""

_lock = threading.Lock()
_configured: set[str] = set()  # components whose level the last apply() set


class _OmniqNullHandler(logging.NullHandler):
    """Marks the NullHandler we install, so apply() adds it only once."""


def get_logger(component: str = "") -> logging.Logger:
    """The library logger for a component: ``get_logger("storage")`` is ``omniq.storage``."""
    component = component.removeprefix(ROOT).lstrip(".")
    return logging.getLogger(f"{ROOT}.{component}" if component else ROOT)


class LoggingConfig(msgspec.Struct, frozen=True, kw_only=True):
    """Levels for OmniQ's own logging (the ``omniq.*`` loggers), separate from task events.

    ``apply()`` only touches loggers under ``omniq``: it never adds handlers to the root
    logger, so the application decides where records go. ``DISABLED`` or ``disabled``
    silences every ``omniq.*`` logger, including components given their own level.
    """

    level: str = "INFO"
    disabled: bool = False
    component_levels: dict[str, str] = msgspec.field(default_factory=dict)

    def __post_init__(self) -> None:
        msgspec.structs.force_setattr(
            self, "level", FIELD_RULES["log_level"].validate("level", self.level)
        )
        levels = FIELD_RULES["component_log_levels"].validate(
            "component_levels", self.component_levels
        )
        msgspec.structs.force_setattr(self, "component_levels", levels)

    @classmethod
    def from_settings(cls, settings: Settings) -> LoggingConfig:
        """The logging part of a Settings (log_level, disable_logging, component_log_levels)."""
        return cls(
            level=settings.log_level,
            disabled=settings.disable_logging,
            component_levels=settings.component_log_levels,
        )

    @property
    def silenced(self) -> bool:
        """True when all library logging is off."""
        return self.disabled or self.level == "DISABLED"

    def apply(self) -> None:
        """Set the ``omniq`` loggers' levels; calling it again with the same config is a no-op.

        Components set by a previous apply() but absent now go back to inheriting.
        """
        global _configured
        root = logging.getLogger(ROOT)
        with _lock:
            if not any(isinstance(h, _OmniqNullHandler) for h in root.handlers):
                root.addHandler(_OmniqNullHandler())
            root.setLevel(SILENT if self.silenced else _level(self.level))
            root.propagate = not self.silenced
            for component in _configured - set(self.component_levels):
                get_logger(component).setLevel(logging.NOTSET)
            for component, level in self.component_levels.items():
                get_logger(component).setLevel(SILENT if self.silenced else _level(level))
            _configured = set(self.component_levels)


def _level(name: str) -> int:
    return logging.getLevelNamesMapping().get(name, SILENT)  # "DISABLED" is not a stdlib level
