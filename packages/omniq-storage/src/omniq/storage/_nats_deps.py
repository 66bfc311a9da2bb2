"""Dependencies on task ids not enqueued yet (NATS backend).

The reference (in-memory) semantics: a task depending on an unknown id waits, and is
released when that id is later enqueued and succeeds. The dependent cannot be listed
in a record that does not exist, so it is parked under ``w<dep>`` in ``NS_KEYS`` (a
flag key ``waiters`` tells enqueues whether to look at all), and the dependency's
enqueue adopts it into its record's ``dependents``.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import TYPE_CHECKING

import msgspec

from omniq.models import TaskStatus

from ._interfaces import CompletionReport, DependencyPolicy

if TYPE_CHECKING:
    from ._nats_tasks import QueueCore

__all__ = ["adopt_waiters", "depend"]

_enc = msgspec.msgpack.Encoder()
_dec = msgspec.msgpack.Decoder(list[str])


async def depend(q: QueueCore, dep: str, child: str) -> None:
    """List ``child`` among ``dep``'s dependents; a ``dep`` not enqueued yet gets a
    waiter entry instead (``NS_KEYS`` ``w<dep>``), adopted when ``dep`` is enqueued.
    Waiter write then dependency read here, dependency write then waiter read in
    ``adopt_waiters``: one of the two sides always sees the other."""
    from ._nats import token
    from ._nats_tasks import with_dependent

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


async def adopt_waiters(q: QueueCore, ids: Sequence[str], policy: DependencyPolicy) -> None:
    """Hand tasks that waited for ``ids`` before they existed to their records and
    re-check them. One read per batch until any waiter has ever existed."""
    from ._nats import token
    from ._nats_tasks import with_dependent

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
