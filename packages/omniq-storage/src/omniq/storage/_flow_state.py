"""Flow limits for the in-process state machine (memory and file backends, and the
SQLite backend's claim): which tasks share a limit key, and whether one more may start.

Everything is derived from the task records themselves, so it survives a journal
replay and needs no bookkeeping on completion: a key's running count is its tasks in
``running`` with a lease that has not lapsed (a standby counts once the claim it
stands by no longer runs), and its recent starts are the claim times
each record keeps (``TaskRecord.starts``, trimmed to the rate window at each claim).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Protocol

from omniq.models import LimitInfo, LimitSpec, Task, TaskStatus, limit_of, unit_of

__all__ = ["LimitIndex", "Usage", "burst_of", "rate_text", "usage_of"]


class _Rec(Protocol):
    task: Task
    token: str | None
    lease_expires_at: float | None
    starts: tuple[float, ...]
    standby_of: tuple[str, str] | None


def lease_live(rec: _Rec, now: float) -> bool:
    """True while ``rec``'s lease has not lapsed."""
    return rec.lease_expires_at is not None and rec.lease_expires_at > now


def burst_of(count: int, window: float) -> tuple[int, float]:
    """``RateSpec.burst`` and ``RateSpec.burst_window`` of a rate of ``count`` starts per
    (guarded) ``window``: at most that many starts in any such sub-window."""
    b = max(min(count, 10), -(-count // 5))
    return b, 0.8 * window * b / count


class Usage:
    """Running count, starts inside the rate window and starts inside the burst window
    of one key."""

    __slots__ = ("recent", "running", "starts")

    def __init__(self, running: int, starts: int, recent: int = 0) -> None:
        self.running = running
        self.starts = starts
        self.recent = recent

    def take(self) -> None:
        """Count one more task started now."""
        self.running += 1
        self.starts += 1
        self.recent += 1

    def admits(self, spec: LimitSpec) -> bool:
        """True if one more task under ``spec`` may start now."""
        if spec.max_concurrency is not None and self.running >= spec.max_concurrency:
            return False
        rate = spec.rate
        return rate is None or (self.starts < rate.count and self.recent < rate.burst)


def usage_of(spec: LimitSpec, recs: Iterable[_Rec], now: float) -> Usage:
    """The usage of ``spec.key`` among ``recs`` (the records carrying that key)."""
    starts = recent = 0
    since = now - spec.rate.window if spec.rate is not None else now
    since_b = now - spec.rate.burst_window if spec.rate is not None else now
    live: list[_Rec] = []
    for r in recs:
        if r.task.status is TaskStatus.RUNNING and lease_live(r, now):
            live.append(r)
        if spec.rate is not None and r.starts:
            starts += sum(1 for s in r.starts if s > since)
            recent += sum(1 for s in r.starts if s > since_b)
    running = len(live)
    if any(r.standby_of is not None for r in live):
        # A standby of a claim that still runs shares that claim's slot.
        claims = {(r.task.id, r.token) for r in live}
        running -= sum(1 for r in live if r.standby_of in claims)
    return Usage(running, starts, recent)


def rate_text(spec: LimitSpec) -> str | None:
    if spec.rate is None:
        return None
    return f"{spec.rate.count}/{unit_of(spec.rate.per)}"


class LimitIndex:
    """Task ids per limit key (records without limits are not indexed)."""

    def __init__(self) -> None:
        self.by_key: dict[str, set[str]] = {}
        self.key_of: dict[str, str] = {}
        """The limit key of each indexed task id."""

    def add(self, task: Task) -> LimitSpec | None:
        spec = limit_of(task)
        if spec is not None:
            self.by_key.setdefault(spec.key, set()).add(task.id)
            self.key_of[task.id] = spec.key
        return spec

    def discard(self, task: Task) -> None:
        key = self.key_of.pop(task.id, None)
        if key is not None:
            ids = self.by_key.get(key)
            if ids is not None:
                ids.discard(task.id)
                if not ids:
                    del self.by_key[key]

    def records(self, key: str, recs: Mapping[str, _Rec]) -> list[_Rec]:
        return [r for i in self.by_key.get(key, ()) if (r := recs.get(i)) is not None]

    def info(self, recs: Mapping[str, _Rec], now: float) -> list[LimitInfo]:
        """Every key's running count and remaining rate budget, by key."""
        out: list[LimitInfo] = []
        for key in sorted(self.by_key):
            rs = self.records(key, recs)
            if not rs:
                continue
            live = [r for r in rs if not r.task.status.is_terminal] or rs
            spec = limit_of(max(live, key=lambda r: r.task.created_at).task)
            if spec is None:
                continue
            use = usage_of(spec, rs, now)
            out.append(
                LimitInfo(
                    key=key,
                    running=use.running,
                    max_concurrency=spec.max_concurrency,
                    rate_limit=rate_text(spec),
                    remaining=None if spec.rate is None else max(0, spec.rate.count - use.starts),
                )
            )
        return out
