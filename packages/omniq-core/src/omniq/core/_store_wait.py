"""The schedule of ``OmniQ.open(wait=...)``: how long to pause after each try that found a
store unreachable, until the wait is used up."""

from __future__ import annotations

import logging
import time

from omniq.models import BackendUnavailableError, ConfigError, redact_text

__all__ = ["StoreWait"]

_log = logging.getLogger("omniq.core")


class StoreWait:
    """Pauses between tries of opening the stores: 0.5 s, doubling up to 5 s, until
    ``wait`` seconds have passed since it was made."""

    FIRST = 0.5
    LONGEST = 5.0

    def __init__(self, wait: float) -> None:
        if not wait >= 0:  # also refuses NaN
            raise ConfigError("wait", wait, "a number of seconds >= 0")
        self._end = time.monotonic() + wait
        self._pause = self.FIRST

    def after(self, exc: BackendUnavailableError) -> float | None:
        """The pause before the next try, logged at WARNING with ``exc`` (the failure of
        the last one); None when the wait is used up."""
        left = self._end - time.monotonic()
        if left <= 0:
            return None
        step = min(self._pause, left)
        self._pause = min(2 * self._pause, self.LONGEST)
        text = " ".join(str(exc).split())
        _log.warning(redact_text(f"{text}; trying again in {step:.1f} s ({left:.0f} s left)"))
        return step
