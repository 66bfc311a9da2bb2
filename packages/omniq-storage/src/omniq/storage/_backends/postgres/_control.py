"""Progress records and cancel notifications of the PostgreSQL task queue.

``set_progress`` is one statement: the leases still held (same fence as ``renew``)
are extended and their progress upserted into ``task_progress``; the ids it did not
touch are stale. A cancel is a ``NOTIFY`` on ``omniq:<schema>:cancel`` whose payload
is the ids (unit-separated); every backend's listener feeds its task store's cancel
feed, so workers in every process hear of it.
"""

from __future__ import annotations

import builtins
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import msgspec

from omniq.models import Progress, now
from omniq.storage._interfaces import ProgressUpdate

__all__ = ["PgTaskControl"]

T = TypeVar("T")

_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder(Progress).decode

_SET = """
WITH i AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::bytea[]) AS i(tid, tok, data)
), held AS (
    UPDATE tasks t SET lease_expires_at = $4
    FROM i WHERE t.id = i.tid AND t.token = i.tok AND t.status = 'running'
    RETURNING t.id, i.data
), w AS (
    INSERT INTO task_progress (task_id, data, updated_at)
    SELECT id, data, $5 FROM held
    ON CONFLICT (task_id) DO UPDATE SET data = EXCLUDED.data, updated_at = EXCLUDED.updated_at
    RETURNING task_id
)
SELECT task_id FROM w
"""

_STORE = """
INSERT INTO task_progress (task_id, data, updated_at)
SELECT * FROM unnest($1::text[], $2::bytea[], $3::float8[])
ON CONFLICT (task_id) DO UPDATE SET data = EXCLUDED.data, updated_at = EXCLUDED.updated_at
"""

_GET = "SELECT task_id, data FROM task_progress WHERE task_id = ANY($1::text[])"

NOTIFY_IDS = 50
"""Ids per NOTIFY (its payload is limited to 8000 bytes; an id to 128 characters)."""


class PgTaskControl:
    """Mixed into ``PgTaskQueue`` (before ``TaskQueueStorage``)."""

    cancel_poll: float | None = None  # cancels arrive by NOTIFY (renewal catches a loss)

    if TYPE_CHECKING:
        from ._engine import PgEngine

        _be: PgEngine

        async def _call(self, fn: Callable[..., Awaitable[T]]) -> T: ...  # EngineStore's

    async def set_progress(
        self, updates: Sequence[ProgressUpdate], lease: float
    ) -> builtins.list[str]:
        if not updates:
            return []
        ids = [u.task_id for u in updates]
        toks = [u.token for u in updates]
        blobs = [_encode(u.progress) for u in updates]
        t = now()
        rows = await self._call(lambda c: c.fetch(_SET, ids, toks, blobs, t + lease, t))
        kept = {r["task_id"] for r in rows}
        return [i for i in ids if i not in kept]

    async def store_progress(self, updates: Sequence[ProgressUpdate]) -> None:
        if not updates:
            return
        ids = [u.task_id for u in updates]
        blobs = [_encode(u.progress) for u in updates]
        stamps = [u.progress.updated_at for u in updates]
        await self._call(lambda c: c.execute(_STORE, ids, blobs, stamps))

    async def get_progress(self, task_ids: Sequence[str]) -> builtins.list[Progress | None]:
        if not task_ids:
            return []
        ids = builtins.list(task_ids)
        rows: list[Any] = await self._call(lambda c: c.fetch(_GET, ids))
        found: dict[str, Progress] = {}
        for r in rows:
            try:
                found[r["task_id"]] = _decode(r["data"])
            except msgspec.DecodeError:
                continue
        return [found.get(i) for i in ids]

    async def signal_cancel(self, task_ids: Sequence[str]) -> None:
        if not task_ids:
            return
        chan = self._be.cancel_channel
        ids = builtins.list(task_ids)
        payloads = ["\x1f".join(ids[i : i + NOTIFY_IDS]) for i in range(0, len(ids), NOTIFY_IDS)]

        async def run(c: Any) -> None:
            for p in payloads:
                await c.execute("SELECT pg_notify($1, $2)", chan, p)

        await self._call(run)
