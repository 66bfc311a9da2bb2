"""What the PostgreSQL backend's stores need from the backend that owns them."""

from __future__ import annotations

from typing import Protocol

from omniq.storage._remote import Engine
from omniq.storage._wake import Wake

from ._maintenance import Vacuumer

__all__ = ["PgEngine"]


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

    async def listen_work(self) -> None:
        """LISTEN on the work channel before a wait on ``work_wake``."""
