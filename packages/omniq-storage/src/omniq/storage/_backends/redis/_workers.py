"""The Redis backend's worker registry: entries in the hash ``<prefix>wk`` (worker id
-> msgpack entry), their expiry in the sorted set ``<prefix>wkx`` (score expires_at).

A refresh writes both in one MULTI; readers take the ids scored after now, so an
entry past its expiry is invisible at once; ``purge_expired`` (the ``workers_purge``
script) deletes such entries from both keys atomically.
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from typing import Any

from omniq.models import WorkerInfo
from omniq.models import now as _now
from omniq.storage._interfaces import WorkerRegistry
from omniq.storage._workers import alive, decode_worker, encode_worker

from ._engine import RedisStore

__all__ = ["RedisWorkers"]


class RedisWorkers(RedisStore, WorkerRegistry):
    """Worker entries in a hash plus an expiry sorted set."""

    async def register(self, workers: Sequence[WorkerInfo]) -> None:
        if not workers:
            return
        mapping = {w.id: encode_worker(w) for w in workers}
        scores = {w.id: w.expires_at for w in workers}
        r = self._be.redis

        async def run() -> Any:
            pipe = r.pipeline(transaction=True)
            pipe.hset(f"{self._p}wk", mapping=mapping)  # type: ignore[arg-type]
            pipe.zadd(f"{self._p}wkx", scores)
            return await pipe.execute()

        await self._call(run)

    async def deregister(self, worker_ids: Sequence[str]) -> int:
        ids = builtins.list(worker_ids)
        if not ids:
            return 0
        r = self._be.redis

        async def run() -> Any:
            pipe = r.pipeline(transaction=True)
            pipe.hdel(f"{self._p}wk", *ids)
            pipe.zrem(f"{self._p}wkx", *ids)
            return await pipe.execute()

        return int((await self._call(run))[0])

    async def list(self, *, now: float | None = None) -> builtins.list[WorkerInfo]:
        t = _now() if now is None else now
        r = self._be.redis
        ids: builtins.list[Any] = await self._call(
            lambda: r.zrangebyscore(f"{self._p}wkx", f"({t!r}", "+inf")
        )
        if not ids:
            return []
        blobs: builtins.list[Any] = await self._call(lambda: r.hmget(f"{self._p}wk", ids))
        return alive((decode_worker(b) for b in blobs if b is not None), t)

    async def purge_expired(self, *, now: float | None = None) -> int:
        t = _now() if now is None else now
        script = self._be.scripts["workers_purge"]
        return int(await self._call(lambda: script(args=[self._p, repr(_now()), repr(t)])))
