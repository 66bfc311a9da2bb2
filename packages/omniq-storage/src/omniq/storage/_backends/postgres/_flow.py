"""Flow limits on PostgreSQL: limited tasks carry ``limit_key``/``limit_cap``/
``limit_rate``/``limit_per`` in their row (set in the transaction that stores them),
the plain claim statements leave them alone and ``omniq_claim_limited``
(``0006_flow_control.sql``) claims them within their limits."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from omniq.models import LimitInfo, Task, limit_of, unit_of

from ._sql import QUERIES as _Q

__all__ = ["LIMITS_FREED", "SCAN", "limit_args", "limit_infos", "rate_text"]

LIMITS_FREED = "\x1fL:"
"""The NOTIFY payload (and wake key) prefix of ``limits_freed``, before the queue."""

SCAN = 1000
"""How many ready limited tasks one claim looks at (held ones are skipped)."""


def limit_args(tasks: Sequence[Task]) -> tuple[list[Any], ...] | None:
    """The ``set_limits`` arrays for the limited tasks among ``tasks`` (None if none)."""
    cols: tuple[list[Any], ...] = ([], [], [], [], [])
    for t in tasks:
        spec = limit_of(t)
        if spec is None:
            continue
        cols[0].append(t.id)
        cols[1].append(spec.key)
        cols[2].append(spec.max_concurrency)
        cols[3].append(None if spec.rate is None else spec.rate.count)
        cols[4].append(None if spec.rate is None else spec.rate.window)
    return cols if cols[0] else None


def rate_text(count: int | None, per: float | None) -> str | None:
    if count is None or per is None:
        return None
    return f"{count}/{unit_of(per)}"


async def limit_infos(conn: Any, t: float) -> list[LimitInfo]:
    rows = await conn.fetch(_Q["limit_usage"], t)
    return [
        LimitInfo(
            key=r["limit_key"],
            running=int(r["running"]),
            max_concurrency=r["limit_cap"],
            rate_limit=rate_text(r["limit_rate"], r["limit_per"]),
            remaining=None
            if r["limit_rate"] is None
            else max(0, r["limit_rate"] - int(r["starts"])),
        )
        for r in rows
    ]
