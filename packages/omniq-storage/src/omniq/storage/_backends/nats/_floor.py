"""Scan floors: when a full-bucket purge scan can be skipped because nothing is due.

The NATS backend has no index on a record's finish or expiry time, so ``purge`` and
``purge_expired`` read the whole bucket. The worker's sweep calls them every second,
which on a bucket of many thousands of records costs more than the work it drains.
After a scan, a ``ScanFloor`` remembers the earliest time anything left in the bucket
(or written since through this store) can become due; a purge whose cutoff is not past
that floor has nothing to do and skips its scan. Writers this store does not see
(other processes) are covered by ``margin`` when their due times are never earlier than
their write (a finish time: at or after the scan's start, less clock skew), and always
by ``max_age`` (a floor older than that is dropped, so the next call scans again).
"""

from __future__ import annotations

import math

from omniq.models import now

__all__ = ["ScanFloor"]


class ScanFloor:
    """The earliest due time of what a purge scan left behind, while it is trusted."""

    def __init__(self, *, margin: float | None, max_age: float = 30.0) -> None:
        self.margin = margin
        """Seconds of clock skew (and in-flight writes) allowed for other writers' due
        times, which are never before their write; None when they can be (an expiry)."""
        self.max_age = max_age
        """Seconds a floor is trusted before the next purge scans again."""
        self._floor = -math.inf
        self._at = -math.inf

    def start(self) -> float:
        """The time a scan starts (pass it to ``scanned``)."""
        return now()

    def scanned(self, started: float, earliest_left: float) -> None:
        """A scan that started at ``started`` left nothing due before ``earliest_left``
        (``math.inf`` when it left nothing that can become due)."""
        if self.margin is not None:
            earliest_left = min(earliest_left, started - self.margin)
        self._floor = earliest_left
        self._at = started

    def wrote(self, due: float) -> None:
        """This store wrote a record that becomes due at ``due``."""
        self._floor = min(self._floor, due)

    def skip(self, cutoff: float) -> bool:
        """True when a purge of everything due before ``cutoff`` would find nothing."""
        return cutoff <= self._floor and now() - self._at < self.max_age
