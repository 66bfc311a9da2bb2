"""The PostgreSQL backend's worker registry: the ``workers`` table (migration 0004)."""

from __future__ import annotations

import builtins
from collections.abc import Sequence

from omniq.models import WorkerInfo
from omniq.models import now as _now
from omniq.storage._interfaces import WorkerRegistry
from omniq.storage._remote import EngineStore
from omniq.storage._workers import alive, decode_worker, encode_worker

from ._engine import PgEngine
from ._sql import QUERIES as _Q

__all__ = ["PgWorkers"]


class PgWorkers(EngineStore[PgEngine], WorkerRegistry):
    """One row per worker (id, expires_at, msgpack entry); each call is one statement."""

    async def register(self, workers: Sequence[WorkerInfo]) -> None:
        if not workers:
            return
        args = (
            [w.id for w in workers],
            [w.expires_at for w in workers],
            [encode_worker(w) for w in workers],
        )
        await self._call(lambda c: c.execute(_Q["workers_register"], *args))

    async def deregister(self, worker_ids: Sequence[str]) -> int:
        ids = builtins.list(worker_ids)
        if not ids:
            return 0
        return int(await self._call(lambda c: c.fetchval(_Q["workers_deregister"], ids)))

    async def list(self, *, now: float | None = None) -> builtins.list[WorkerInfo]:
        t = _now() if now is None else now
        rows = await self._call(lambda c: c.fetch(_Q["workers_list"], t))
        return alive((decode_worker(r["envelope"]) for r in rows), t)

    async def purge_expired(self, *, now: float | None = None) -> int:
        t = _now() if now is None else now
        return int(await self._call(lambda c: c.fetchval(_Q["workers_purge"], t)))
