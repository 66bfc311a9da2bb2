"""Time helpers. OmniQ stores instants as float Unix seconds (UTC)."""

from __future__ import annotations

import time
from datetime import UTC, datetime

__all__ = ["now", "to_datetime"]


def now() -> float:
    """Current time as Unix seconds."""
    return time.time()


def to_datetime(ts: float) -> datetime:
    """Unix seconds to an aware UTC datetime."""
    return datetime.fromtimestamp(ts, tz=UTC)
