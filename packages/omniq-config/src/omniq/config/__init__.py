"""OmniQ configuration: validated settings, ``OMNIQ_*`` environment parsing, logging.

Defaults are the constants of ``omniq.models.settings``; ``OMNIQ_<NAME>`` environment
variables override them and explicit arguments override both. Every value is validated
up front, so a bad deployment fails at start-up with a ConfigError naming the setting or
variable, the value and what is accepted.
"""

from __future__ import annotations

from omniq.models.lowlevel import publish

from ._env import PREFIX, EnvConfig
from ._logging import SILENT, LoggingConfig, get_logger
from ._provider import ConfigProvider, Listener, get_provider, get_settings, set_provider
from ._settings import FIELD_RULES, LOG_LEVELS, FieldRule, Settings

__all__ = [
    "FIELD_RULES",
    "LOG_LEVELS",
    "PREFIX",
    "SILENT",
    "ConfigProvider",
    "EnvConfig",
    "FieldRule",
    "Listener",
    "LoggingConfig",
    "Settings",
    "get_logger",
    "get_provider",
    "get_settings",
    "set_provider",
]

# Show public names as omniq.config.X so the private modules can move freely.
publish(globals())
del publish
