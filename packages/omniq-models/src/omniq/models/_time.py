"""Time helpers. OmniQ stores instants as float Unix seconds (UTC)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

__all__ = ["as_timestamp", "now"]


def now() -> float:
    """Current time as Unix seconds."""
    return time.time()


def as_timestamp(
    value: float | datetime | timedelta | None, *, base: float | None = None
) -> float | None:
    """Convert a user-given instant to Unix seconds.

    A datetime must be timezone-aware (a naive one is ambiguous across hosts); a
    timedelta is taken relative to ``base`` (default: now).
    """
    if value is None:
        return None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value.isoformat()} is ambiguous; give it a tzinfo")
        return value.timestamp()
    if isinstance(value, timedelta):
        return (now() if base is None else base) + value.total_seconds()
    return float(value)


def to_datetime(ts: float) -> datetime:
    """Unix seconds to an aware UTC datetime."""
    return datetime.fromtimestamp(ts, tz=UTC)
