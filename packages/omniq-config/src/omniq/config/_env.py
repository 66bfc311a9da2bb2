"""Reading ``OMNIQ_*`` environment variables into validated setting values."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

from omniq.models import ConfigError

from ._settings import FIELD_RULES, Settings, _suggest

__all__ = ["PREFIX", "EnvConfig"]

PREFIX = "OMNIQ_"
_log = logging.getLogger("omniq.config")


class EnvConfig:
    """The ``OMNIQ_<NAME>`` variables of an environment, parsed and validated.

    Every variable is parsed by its field's type (numbers, booleans, JSON objects) and
    a bad value raises ConfigError naming the *variable*, so the operator knows what to
    fix. Unknown ``OMNIQ_*`` variables only log a warning with the closest known names:
    a typo should be visible without breaking a deployment.
    """

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._environ: Mapping[str, str] = os.environ if environ is None else environ

    @staticmethod
    def variable(field: str) -> str:
        """The environment variable for a Settings field (``task_ttl`` -> ``OMNIQ_TASK_TTL``)."""
        return PREFIX + field.upper()

    def unknown(self) -> list[str]:
        """``OMNIQ_*`` variables present in the environment that match no setting."""
        known = {self.variable(f) for f in FIELD_RULES}
        return sorted(k for k in self._environ if k.startswith(PREFIX) and k not in known)

    def overrides(self) -> dict[str, Any]:
        """Field name -> validated value for every setting given in the environment."""
        known = [self.variable(f) for f in FIELD_RULES]
        for name in self.unknown():
            hint = _suggest(name, known)
            _log.warning("ignoring unknown environment variable %s%s", name, hint and f" ({hint})")
        out: dict[str, Any] = {}
        for field, rule in FIELD_RULES.items():
            var = self.variable(field)
            if var in self._environ:
                out[field] = rule.from_text(var, self._environ[var])
        return out

    def settings(self, **overrides: Any) -> Settings:
        """Constants < environment < ``overrides``, validated as a whole.

        A cross-field error caused by a variable (``OMNIQ_RETRY_MAX_DELAY`` below the
        retry delay) is reported under the variable's name.
        """
        env = self.overrides()
        try:
            return Settings().replace(**{**env, **overrides})
        except ConfigError as exc:
            if exc.name in env and exc.name not in overrides:
                var = self.variable(exc.name)
                shown = FIELD_RULES[exc.name].shown(self._environ[var])
                raise ConfigError(var, shown, exc.accepted) from exc
            raise
