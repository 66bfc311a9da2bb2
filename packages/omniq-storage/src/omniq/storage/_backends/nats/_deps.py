"""Dependencies on task ids not enqueued yet (NATS backend).

The reference (in-memory) semantics: a task depending on an unknown id waits, and is
released when that id is later enqueued and succeeds. The dependent cannot be listed
in a record that does not exist, so it is parked under ``w<dep>`` in ``NS_KEYS`` (a
flag key ``waiters`` tells enqueues whether to look at all), and the dependency's
enqueue adopts it into its record's ``dependents``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Protocol

import msgspec

from omniq.models import TaskStatus
from omniq.storage._interfaces import CompletionReport, DependencyPolicy

from ._conn import token
from ._engine import NatsEngine
from ._records import Rec, with_dependent

__all__ = ["DepQueue", "adopt_waiters", "depend"]


class DepQueue(Protocol):
    """The task queue operations dependency adoption uses (``_tasks.QueueCore``)."""

    _be: NatsEngine
    _waiters_seen: bool

    async def _get(self, task_id: str) -> tuple[Rec | None, int]: ...

    async def _change(
        self, task_id: str, fn: Callable[[Rec], Rec | None], hint: tuple[int, Rec] | None = None
    ) -> tuple[Rec, Rec, int] | None: ...

    async def _resolve(
        self,
        ended: list[tuple[str, TaskStatus, list[str]]],
        policy: DependencyPolicy,
        report: CompletionReport,
    ) -> None: ...


_enc = msgspec.msgpack.Encoder()
_dec = msgspec.msgpack.Decoder(list[str])


async def depend(q: DepQueue, dep: str, child: str) -> None:
    """List ``child`` among ``dep``'s dependents; a ``dep`` not enqueued yet gets a
    waiter entry instead (``NS_KEYS`` ``w<dep>``), adopted when ``dep`` is enqueued.
    Waiter write then dependency read here, dependency write then waiter read in
    ``adopt_waiters``: one of the two sides always sees the other."""
    add = functools.partial(with_dependent, child=child)
    if await q._change(dep, add) is not None:
        return
    if (await q._get(dep))[0] is not None:
        return  # listed already, or terminal (the re-check below settles it)
    js, bucket = q._be.js, q._be.keys_bucket
    await js.kv_put(bucket, "waiters", b"1")
    key = "w" + token(dep)
    while True:
        raw, rev = await js.kv_get(bucket, key)
        kids = [] if raw is None else _dec.decode(raw)
        if child in kids or await js.kv_put(bucket, key, _enc.encode([*kids, child]), rev):
            break
    await q._change(dep, add)  # ``dep`` enqueued meanwhile


async def adopt_waiters(q: DepQueue, ids: Sequence[str], policy: DependencyPolicy) -> None:
    """Hand tasks that waited for ``ids`` before they existed to their records and
    re-check them. One read per batch until any waiter has ever existed."""
    js, bucket = q._be.js, q._be.keys_bucket
    if not q._waiters_seen:
        if (await js.kv_get(bucket, "waiters"))[0] is None:
            return
        q._waiters_seen = True
    report = CompletionReport()
    for tid, (raw, _) in zip(
        ids, await js.kv_get_many(bucket, ["w" + token(i) for i in ids]), strict=True
    ):
        if raw is None:
            continue
        kids = _dec.decode(raw)
        for kid in kids:
            await q._change(tid, functools.partial(with_dependent, child=kid))
        await q._resolve([(tid, TaskStatus.PENDING, kids)], policy, report)
