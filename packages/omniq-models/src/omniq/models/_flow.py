"""Flow-control specs: a task's rate limit (``"N/s"``, ``"N/m"``, ``"N/h"``) and
concurrency cap, shared by every task with the same ``limit_key``.

Engines enforce them inside their claim; this module only parses and checks the
specs, so every engine and the facade read them the same way.
"""

from __future__ import annotations

import re

import msgspec

from ._errors import InvalidTaskError

__all__ = [
    "MAX_LIMIT",
    "LimitInfo",
    "LimitSpec",
    "RateSpec",
    "limit_of",
    "parse_rate",
    "unit_of",
    "validate_max_concurrency",
]

MAX_LIMIT = 1_000_000
"""The largest ``N`` of a rate limit and the largest ``max_concurrency``."""

_WINDOWS = {"s": 1.0, "m": 60.0, "h": 3600.0}
_RATE = re.compile(r"^\s*(\d+)\s*/\s*([smh])\s*$")


class RateSpec(msgspec.Struct, frozen=True):
    """At most ``count`` starts in any ``per``-second window."""

    count: int
    per: float

    @property
    def window(self) -> float:
        """The window the stores count starts in: ``per`` plus a guard of 3% (at most
        0.25 s), so that the starts as the tasks see them (a few milliseconds after the
        claim, not all equally late) still keep to ``count`` in any ``per`` seconds."""
        return self.per + min(self.per * 0.03, 0.25)

    @property
    def burst(self) -> int:
        """The most starts in any ``burst_window``: ``max(min(count, 10), ceil(count / 5))``
        (so rates up to 10 per window keep a plain window). Engines that keep
        only ``count`` and ``window`` compute it (and ``burst_window``) the same way."""
        return max(min(self.count, 10), -(-self.count // 5))

    @property
    def burst_window(self) -> float:
        """The window ``burst`` is counted in: ``0.8 * window * burst / count``. Starts are
        spread over the window in bursts of at most ``burst`` instead of ``count`` at
        once, so the time between a claim and its task's start (which grows with the
        size of the batch a worker dispatches) stays short and even, and the starts as
        the tasks see them keep to ``count`` in any ``per`` seconds too. The factor 0.8
        lets a claim that comes late catch up: the full window still bounds the starts
        to ``count``, the burst window only keeps them in small batches."""
        return 0.8 * self.window * self.burst / self.count


def unit_of(window: float) -> str:
    """``s``, ``m`` or ``h``: the unit of a rate whose (guarded) window is ``window``."""
    return "s" if window < 30 else "m" if window < 1800 else "h"


class LimitSpec(msgspec.Struct, frozen=True):
    """The limits one claim checks for a task: its key, cap on running tasks (None = no
    cap) and rate (None = no rate limit)."""

    key: str
    max_concurrency: int | None
    rate: RateSpec | None


def parse_rate(spec: object) -> RateSpec:
    """``"50/s"`` -> ``RateSpec(50, 1.0)``; the window is ``s``, ``m`` or ``h``.

    Raises InvalidTaskError for anything else (``"10/x"``, ``"0/s"``, a number)."""
    if not isinstance(spec, str):
        raise InvalidTaskError(
            f"rate_limit must be a str like '10/s', '100/m' or '1000/h', got {type(spec).__name__}"
        )
    m = _RATE.match(spec)
    if m is None:
        raise InvalidTaskError(
            f"rate_limit={spec!r}: expected N/s, N/m or N/h with N a whole number, e.g. '10/s'"
        )
    n = int(m.group(1))
    if not 1 <= n <= MAX_LIMIT:
        raise InvalidTaskError(f"rate_limit={spec!r}: N must be 1 to {MAX_LIMIT}")
    return RateSpec(n, _WINDOWS[m.group(2)])


def validate_max_concurrency(value: object) -> int:
    """Return ``value`` if it is an int from 1 to ``MAX_LIMIT``, else raise."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_LIMIT:
        raise InvalidTaskError(f"max_concurrency={value!r}: expected an int from 1 to {MAX_LIMIT}")
    return value


def limit_of(task: object) -> LimitSpec | None:
    """The limits of ``task`` (a Task), or None when it has neither a rate limit nor a
    concurrency cap. The key defaults to the task's ``func``."""
    rate_limit = getattr(task, "rate_limit", None)
    cap = getattr(task, "max_concurrency", None)
    if rate_limit is None and cap is None:
        return None
    key = getattr(task, "limit_key", None) or getattr(task, "func", "")
    return LimitSpec(str(key), cap, None if rate_limit is None else parse_rate(rate_limit))


class LimitInfo(msgspec.Struct, frozen=True, kw_only=True):
    """One limit key as a store sees it now: tasks running under live leases, the cap,
    the rate and how many more starts the current window allows (None = no rate)."""

    key: str
    running: int
    max_concurrency: int | None = None
    rate_limit: str | None = None
    remaining: int | None = None
