"""What the worker registry holds about one running worker process."""

from __future__ import annotations

import msgspec

from ._enums import WorkerType

__all__ = ["WorkerInfo"]


class WorkerInfo(msgspec.Struct, frozen=True, kw_only=True):
    """One live worker process as its registry entry describes it.

    A worker registers itself when it starts and refreshes the entry with every lease
    renewal tick; ``last_seen`` is its latest refresh and ``expires_at`` the instant the
    entry stops counting (``last_seen`` plus the worker's lease), so a worker whose
    process died drops out within one lease. ``running`` holds the ids of the tasks it
    was running at ``last_seen``. ``worker_type`` is the pool's default executor,
    ``concurrency`` how many tasks it runs at once, ``version`` the OmniQ version.
    """

    id: str
    hostname: str
    pid: int
    queues: tuple[str, ...]
    worker_type: WorkerType
    concurrency: int
    version: str
    started_at: float
    last_seen: float
    expires_at: float
    running: tuple[str, ...] = ()

    def alive(self, at: float) -> bool:
        """True while the entry counts: ``at`` is before ``expires_at``."""
        return at < self.expires_at
