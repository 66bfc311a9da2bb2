"""A worker's entry in the worker registry: what the pool's ``WorkerPresence`` writes."""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version

import msgspec

from omniq.models import WorkerInfo, WorkerType, now
from omniq.storage import WorkerRegistry

__all__ = ["RegistryPresence", "omniq_version"]

_log = logging.getLogger("omniq.core")


def omniq_version() -> str:
    """The installed OmniQ version: the ``omniq`` distribution's, else omniq-core's."""
    for dist in ("omniq", "omniq-core"):
        try:
            return version(dist)
        except PackageNotFoundError:
            continue
    return "unknown"


class RegistryPresence:
    """Implements ``omniq.workers.WorkerPresence`` over a ``WorkerRegistry``.

    Each ``beat`` writes the whole entry (one registry write), with ``last_seen`` now
    and ``expires_at`` one ``lease`` later: the pool beats every third of a lease, so a
    live worker's entry never lapses while one whose process died drops out within a
    lease. The first beat also sweeps entries left behind by dead workers.
    """

    def __init__(
        self,
        registry: WorkerRegistry,
        *,
        worker_id: str,
        queues: Sequence[str],
        worker_type: WorkerType,
        concurrency: int,
        lease: float,
    ) -> None:
        t = now()
        self.registry = registry
        self.lease = float(lease)
        self.info = WorkerInfo(
            id=worker_id,
            hostname=socket.gethostname(),
            pid=os.getpid(),
            queues=tuple(queues),
            worker_type=worker_type,
            concurrency=concurrency,
            version=omniq_version(),
            started_at=t,
            last_seen=t,
            expires_at=t + self.lease,
        )
        self._swept = False

    async def beat(self, running: Sequence[str]) -> None:
        t = now()
        self.info = msgspec.structs.replace(
            self.info, last_seen=t, expires_at=t + self.lease, running=tuple(running)
        )
        await self.registry.register([self.info])
        if not self._swept:
            self._swept = True
            try:
                await self.registry.purge_expired(now=t)
            except Exception:
                _log.warning("sweeping expired worker registry entries failed", exc_info=True)

    async def leave(self) -> None:
        await self.registry.deregister([self.info.id])
