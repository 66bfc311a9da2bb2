"""How a server engine reports losing and regaining its server: a few log lines per
outage instead of one (with a traceback) per retry.

Each networked backend owns one ``Outage``. Its retry and reconnect paths call
``failed(exc)`` for every failed attempt and ``ok()`` after every success; the tracker
logs a warning on the transition to down ("lost connection to ..."), at most one
reminder per ``remind_every`` seconds while down ("still unreachable after N failed
attempts in T s"), and one line on the way back ("reconnected ... after N failed
attempts in T s"). Messages carry the URL and error text redacted, never a traceback.
"""

from __future__ import annotations

import logging
import time

from omniq.models import redact_text, redact_url

__all__ = ["REMIND_EVERY", "Outage"]

REMIND_EVERY = 60.0
"""Seconds between two "still unreachable" reminders during one outage."""


def describe(exc: BaseException | str) -> str:
    """One redacted line naming the error: ``ConnectionRefusedError: [Errno 111] ...``."""
    if isinstance(exc, str):
        text = exc
    else:
        detail = str(exc)
        text = f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__
    return redact_text(" ".join(text.split()))


class Outage:
    """Connection state of one backend; see the module docstring.

    ``engine`` names the backend in messages (``"nats"``), ``url`` the server (shown
    redacted). Not thread-safe: an engine calls it from its own event loop.
    """

    def __init__(
        self,
        engine: str,
        url: str,
        log: logging.Logger,
        *,
        remind_every: float = REMIND_EVERY,
    ) -> None:
        self.where = f"{engine} at {redact_url(url)}"
        self._log = log
        self._remind_every = remind_every
        self._down_since: float | None = None
        self._failures = 0
        self._next_reminder = 0.0

    @property
    def down(self) -> bool:
        """True from a failure until the next success."""
        return self._down_since is not None

    @property
    def failures(self) -> int:
        """Failed attempts in the current outage (0 when up)."""
        return self._failures

    def failed(self, exc: BaseException | str) -> None:
        """One attempt to reach the server failed with ``exc``."""
        t = time.monotonic()
        self._failures += 1
        if self._down_since is None:
            self._down_since = t
            self._next_reminder = t + self._remind_every
            self._log.warning("lost connection to %s: %s", self.where, describe(exc))
        elif t >= self._next_reminder:
            self._next_reminder = t + self._remind_every
            self._log.warning(
                "%s still unreachable after %d failed attempts in %.0f s: %s",
                self.where,
                self._failures,
                t - self._down_since,
                describe(exc),
            )

    def ok(self) -> None:
        """An attempt succeeded: the server is reachable (again)."""
        if self._down_since is None:
            return
        took = time.monotonic() - self._down_since
        failures, self._failures, self._down_since = self._failures, 0, None
        self._log.warning(
            "reconnected to %s after %d failed attempts in %.1f s", self.where, failures, took
        )
