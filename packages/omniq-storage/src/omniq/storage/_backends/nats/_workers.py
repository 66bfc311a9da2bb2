"""The NATS backend's worker registry: the ``NS_WORKERS`` KV bucket, one entry per
worker keyed by its id (see ``_backend``).

Each entry carries its own ``expires_at`` (per-key TTLs need nats-server 2.11): readers
filter expired entries, and ``purge_expired`` deletes each with a revision-checked
purge, so an entry its worker refreshed meanwhile is kept.
"""

from __future__ import annotations

import asyncio
import builtins
from collections.abc import Sequence
from typing import TYPE_CHECKING

from omniq.models import WorkerInfo
from omniq.models import now as _now
from omniq.storage._interfaces import WorkerRegistry
from omniq.storage._remote import EngineStore
from omniq.storage._workers import alive, decode_worker, encode_worker

from ._conn import seq_of, token
from ._engine import NatsEngine

if TYPE_CHECKING:
    from nats.aio.msg import Msg

__all__ = ["NatsWorkers"]


def _live(m: Msg) -> bool:
    return bool(m.data) and not (m.headers and m.headers.get("KV-Operation"))


class NatsWorkers(EngineStore[NatsEngine], WorkerRegistry):
    """Worker entries in a KV bucket (``bucket``), expiry read from each entry."""

    def __init__(self, engine: NatsEngine, bucket: str) -> None:
        super().__init__(engine)
        self.bucket = bucket

    async def register(self, workers: Sequence[WorkerInfo]) -> None:
        if not workers:
            return
        items = [(token(w.id), encode_worker(w), None) for w in workers]
        await self._call(lambda: self._be.js.kv_put_many(self.bucket, items))

    async def deregister(self, worker_ids: Sequence[str]) -> int:
        keys = [token(i) for i in worker_ids]
        if not keys:
            return 0
        js = self._be.js

        async def run() -> int:
            found = await js.kv_get_many(self.bucket, keys)
            await asyncio.gather(*(js.kv_purge(self.bucket, k) for k in keys))
            return sum(1 for raw, _ in found if raw is not None)

        return await self._call(run)

    async def _scan(self) -> builtins.list[tuple[str, int, WorkerInfo | None]]:
        b = self.bucket
        msgs = await self._be.js.scan(f"KV_{b}", f"$KV.{b}.>", last_per_subject=True)
        return [
            (m.subject.rsplit(".", 1)[-1], seq_of(m), decode_worker(m.data))
            for m in msgs
            if _live(m)
        ]

    async def list(self, *, now: float | None = None) -> builtins.list[WorkerInfo]:
        entries = await self._call(self._scan)
        return alive((w for _, _, w in entries), now)

    async def purge_expired(self, *, now: float | None = None) -> int:
        t = _now() if now is None else now
        js = self._be.js

        async def run() -> int:
            doomed = [(k, rev) for k, rev, w in await self._scan() if w is None or not w.alive(t)]
            done = await asyncio.gather(*(js.kv_purge(self.bucket, k, rev) for k, rev in doomed))
            return sum(done)

        return await self._call(run)
