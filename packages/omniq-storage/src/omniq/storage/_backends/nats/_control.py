"""Progress records and cancel notifications of the NATS task queue.

Progress is one record per task in the ``NS_PROGRESS`` KV bucket (msgpack ``Progress``,
kept ``PROGRESS_TTL`` after its last write); ``set_progress`` is the contract's default,
a revision-checked renew (the fence) then the write. A cancel is a core NATS message
on ``NS.cancel`` whose payload is the ids (unit-separated); every backend subscribes
at connect and feeds its task store's cancel feed, so workers in every process hear
of it (a message missed during a reconnect is caught by the next lease renewal).
"""

from __future__ import annotations

import builtins
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import msgspec

from omniq.models import Progress
from omniq.storage._interfaces import ProgressUpdate

from ._conn import subscribe_direct, token

__all__ = ["PROGRESS_TTL", "NatsTaskControl", "progress_bucket_config", "subscribe_cancels"]

T = TypeVar("T")

PROGRESS_TTL = 7 * 86400.0
"""Seconds a progress record outlives its last write."""

_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder(Progress).decode


CANCEL_FLUSH_TIMEOUT = 5
"""Seconds ``signal_cancel`` waits for the server to confirm its notification."""


def cancel_subject(ns: str) -> str:
    return f"{ns}.cancel"


def progress_bucket_config(bucket: str, replicas: int) -> Any:
    """The KeyValueConfig of the progress bucket."""
    from nats.js.api import KeyValueConfig, StorageType

    return KeyValueConfig(
        bucket=bucket,
        history=1,
        ttl=PROGRESS_TTL,
        storage=StorageType.FILE,
        replicas=replicas,
        direct=True,
    )


async def subscribe_cancels(nc: Any, ns: str, push: Callable[[list[str]], None]) -> Any:
    """Subscribe to the namespace's cancel subject; returns the subscription."""

    def on_msg(msg: Any) -> None:
        data = msg.data.decode()
        if data:
            push(data.split("\x1f"))

    return await subscribe_direct(nc, cancel_subject(ns), on_msg)


class NatsTaskControl:
    """Mixed into ``NatsTaskQueue`` (before ``TaskQueueStorage``)."""

    cancel_poll: float | None = None  # cancels arrive on NS.cancel (renewal catches a loss)

    if TYPE_CHECKING:
        from ._engine import NatsEngine

        _be: NatsEngine

        async def _call(self, fn: Callable[..., Awaitable[T]]) -> T: ...  # EngineStore's

    async def store_progress(self, updates: Sequence[ProgressUpdate]) -> None:
        if not updates:
            return
        be = self._be
        items: list[tuple[str, bytes, int | None]] = [
            (token(u.task_id), _encode(u.progress), None) for u in updates
        ]
        await self._call(lambda: be.js.kv_put_many(be.progress_bucket, items))

    async def get_progress(self, task_ids: Sequence[str]) -> builtins.list[Progress | None]:
        if not task_ids:
            return []
        be = self._be
        keys = [token(i) for i in task_ids]
        got = await self._call(lambda: be.js.kv_get_many(be.progress_bucket, keys))
        out: list[Progress | None] = []
        for raw, _rev in got:
            try:
                out.append(None if raw is None else _decode(raw))
            except msgspec.DecodeError:
                out.append(None)
        return out

    async def signal_cancel(self, task_ids: Sequence[str]) -> None:
        if not task_ids:
            return
        be = self._be
        payload = "\x1f".join(task_ids).encode()

        async def send() -> None:
            nc = be.js.nc
            await nc.publish(cancel_subject(be.ns), payload)
            # The server's reply to a ping comes after it routed the notification: like
            # the other engines' notify, this returns once the watchers' server has it.
            await nc.flush(timeout=CANCEL_FLUSH_TIMEOUT)

        await self._call(send)
