"""What the PostgreSQL backend's stores need from the backend that owns them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from omniq.models import ClaimedTask
from omniq.storage._remote import Engine
from omniq.storage._wake import Wake

from ._maintenance import Vacuumer

__all__ = ["PgEngine", "push_key"]


def push_key(worker_id: str) -> str:
    """The ``work_wake`` key a handover to ``worker_id`` wakes (no queue name starts
    with the unit separator)."""
    return f"\x1fp:{worker_id}"


class PgEngine(Engine, Protocol):
    """The backend as its stores see it: ``call(fn)`` runs ``fn(connection)`` on a
    pooled connection; NOTIFY channels and the wakes their payloads feed."""

    work_channel: str
    result_channel: str
    cancel_channel: str
    work_wake: Wake
    result_wake: Wake
    poll_interval: float | None
    """Seconds between checks while no LISTEN connection wakes waits (PgBouncer), else None."""
    vacuumer: Vacuumer
    push_channel: str
    """This backend's own channel: tasks handed over to its waiting workers arrive here."""
    inboxes: dict[str, Callable[[list[ClaimedTask]], None]]
    """Workers of this backend taking handovers: worker id -> its inbox."""

    async def listen_work(self) -> None:
        """LISTEN on the work channel before a wait on ``work_wake``."""

    async def listen_push(self) -> bool:
        """LISTEN on ``push_channel`` before a worker registers for handovers; False
        when this backend has no LISTEN connection (PgBouncer)."""
