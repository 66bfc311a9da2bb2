"""Flow limits on Redis: the ``lim`` field a limited task's hash carries and the
``limits`` script's rows as ``LimitInfo`` (the claim side is ``lua/_limits.lua``)."""

from __future__ import annotations

from typing import Any

from omniq.models import LimitInfo, Task, limit_of, unit_of

from ._engine import as_str

__all__ = ["LIMITS_FREED", "lim_field", "limit_infos"]

LIMITS_FREED = "\x1fL:"
"""The notification (and wake key) prefix of ``limits_freed``, before the queue."""


def _num(x: float | int | None) -> str:
    return "" if x is None else repr(x)


def lim_field(task: Task) -> str:
    """``key US cap US rate US per`` for a limited task, ``""`` otherwise."""
    spec = limit_of(task)
    if spec is None:
        return ""
    rate = spec.rate
    return "\x1f".join(
        (
            spec.key,
            _num(spec.max_concurrency),
            _num(None if rate is None else rate.count),
            _num(None if rate is None else rate.window),
        )
    )


def _opt_int(x: Any) -> int | None:
    s = as_str(x) if isinstance(x, bytes) else str(x)
    return None if s == "" else int(float(s))


def limit_infos(rows: list[Any]) -> list[LimitInfo]:
    out: list[LimitInfo] = []
    for key, running, cap, rate, per, starts in rows:
        n = _opt_int(rate)
        window = as_str(per) if isinstance(per, bytes) else str(per)
        unit = unit_of(float(window)) if window else "s"
        out.append(
            LimitInfo(
                key=as_str(key),
                running=int(running),
                max_concurrency=_opt_int(cap),
                rate_limit=None if n is None else f"{n}/{unit}",
                remaining=None if n is None else max(0, n - int(starts)),
            )
        )
    return sorted(out, key=lambda i: i.key)
