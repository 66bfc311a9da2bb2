"""Progress records and cancel notifications of the Redis task queue.

Progress is ``pg:<id>`` (msgpack ``Progress``, expiring after ``PROGRESS_TTL``), written
by the ``progress`` script under the same fence as ``renew``. A cancel is published on
the backend-wide channel as ``C:<id><US><id>...``; every backend's subscriber pushes
the ids into its task store's cancel feed, so workers in every process hear of it.
"""

from __future__ import annotations

import builtins
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import msgspec

from omniq.models import Progress, now
from omniq.storage._interfaces import ProgressUpdate

__all__ = ["PROGRESS_TTL", "RedisTaskControl"]

T = TypeVar("T")

PROGRESS_TTL = 7 * 86400.0
"""Seconds a progress record outlives its last update."""

_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder(Progress).decode


class RedisTaskControl:
    """Mixed into ``RedisTaskQueue`` (before ``TaskQueueStorage``)."""

    cancel_poll: float | None = None  # cancels arrive by pub/sub (renewal catches a loss)

    if TYPE_CHECKING:
        from ._engine import RedisEngine

        _p: str
        _be: RedisEngine

        async def _script(self, name: str, *args: Any) -> Any: ...  # RedisTaskQueue's

        async def _call(self, fn: Callable[..., Awaitable[T]]) -> T: ...  # EngineStore's

    async def set_progress(
        self, updates: Sequence[ProgressUpdate], lease: float
    ) -> builtins.list[str]:
        if not updates:
            return []
        args: list[Any] = [repr(now() + lease), int(PROGRESS_TTL * 1000)]
        for u in updates:
            args += [u.task_id, u.token, _encode(u.progress)]
        lost = await self._script("progress", *args)
        return [x.decode() if isinstance(x, bytes) else str(x) for x in lost]

    async def store_progress(self, updates: Sequence[ProgressUpdate]) -> None:
        if not updates:
            return
        r = self._be.redis
        ttl = int(PROGRESS_TTL * 1000)

        async def run() -> None:
            pipe = r.pipeline(transaction=False)
            for u in updates:
                pipe.set(f"{self._p}pg:{u.task_id}", _encode(u.progress), px=ttl)
            await pipe.execute()

        await self._call(run)

    async def get_progress(self, task_ids: Sequence[str]) -> builtins.list[Progress | None]:
        if not task_ids:
            return []
        r = self._be.redis
        raw: list[Any] = await self._call(lambda: r.mget([f"{self._p}pg:{i}" for i in task_ids]))
        out: list[Progress | None] = []
        for blob in raw:
            try:
                out.append(None if blob is None else _decode(blob))
            except msgspec.DecodeError:
                out.append(None)
        return out

    async def signal_cancel(self, task_ids: Sequence[str]) -> None:
        if not task_ids:
            return
        r = self._be.redis
        msg = "C:" + "\x1f".join(task_ids)
        await self._call(lambda: r.publish(f"{self._p}chan", msg))
