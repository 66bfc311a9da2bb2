"""Claims straight from the work messages that woke an idle worker (NATS backend).

A worker waiting in ``wait_for_work`` subscribes to its queues' work subjects on core
NATS, so every ready-task message published while it waits reaches it with its body:
the task's id, ready generation, record and revision (``_records.Work``). The next
claim on the same queues leases those tasks from that body with the usual
revision-checked write behind its lease timer, then fences paused queues as every
claim does; it skips the stream-info read and the pull, one round trip of a claim.
A task another worker leased first fails its write and is left to the usual claim.

The message itself stays in the stream: the claim in this process that later pulls it
acks it unread (``QueueCore._taken``); elsewhere it is dropped like any message whose
task moved on (its generation is no longer pending).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import TYPE_CHECKING

import msgspec

from omniq.models import ClaimedTask, TaskStatus, limit_of, new_id, now
from omniq.storage._remote import claimed

from ._records import Rec, Work, claim_fn, enc, pending, rec_dec, work_dec

if TYPE_CHECKING:
    from ._tasks import QueueCore

__all__ = ["WOKEN_MAX", "claim_woken", "give_back", "woken_work"]

WOKEN_MAX = 64
"""Most work messages one wait keeps for the claim after it."""


def woken_work(data: bytes, queues: frozenset[str]) -> tuple[Work, Rec] | None:
    """The work message ``data`` and its record, when it is one a claim may lease
    straight away: decodes, names a pending, unblocked task of one of ``queues``,
    without a flow limit (those go through the claim's admission)."""
    try:
        w = work_dec.decode(data)
        rec = rec_dec.decode(w.rec)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
    t = rec.task
    if (
        t.status is not TaskStatus.PENDING
        or rec.blocked
        or rec.gen != w.gen
        or t.queue not in queues
        or limit_of(t) is not None
    ):
        return None
    return w, rec


async def claim_woken(
    core: QueueCore,
    woken: Sequence[tuple[Work, Rec]],
    worker_id: str,
    limit: int,
    lease: float,
    *,
    handed: dict[str, str] | None = None,
) -> list[ClaimedTask]:
    """Lease up to ``limit`` of the ``woken`` tasks (highest priority first, then in
    id order): one batch of revision-checked writes behind the claim's lease timer,
    then the paused-queue fence. Tasks whose write fails are not claimed here.
    ``handed`` (a handover's): task id -> lease token of each task it tries to lease,
    filled before the writes are sent."""
    be = core._be
    core.limited = []
    seen: set[str] = set()
    picked: list[tuple[Work, Rec]] = []
    for w, rec in sorted(woken, key=lambda wr: (-wr[1].task.priority, wr[0].id)):
        if w.id not in seen:
            seen.add(w.id)
            picked.append((w, rec))
    picked = picked[:limit]
    if not picked:
        return []
    token, t = new_id(), now()
    until = t + lease
    if handed is not None:
        handed.update((w.id, token) for w, _ in picked)
    items = [
        (
            w.id,
            functools.partial(claim_fn, gen=w.gen, token=token, until=until, worker=worker_id, t=t),
            (w.rev, rec),
        )
        for w, rec in picked
    ]
    timer = (f"{be.ns}.timer.lease", enc.encode([token, until, [w.id for w, _ in picked]]), None)
    # A write refused for its revision: the task moved on (another worker leased it);
    # the usual claim deals with anything else.
    res = await core._change_many(items, lead=[timer], retry=False)
    core._crash("claim")
    out: list[ClaimedTask] = []
    for r in res:
        if r is not None:
            core._remember(r[1], r[2])
            if len(core._taken) > 10_000:
                core._taken.clear()
            core._taken[r[1].task.id] = r[1].gen
            out.append(claimed(r[1].task, token, until, worker_id))
    if out:
        out = await core._fence_paused(out, token)
    if handed is not None:
        won = {c.task.id for c in out}
        for w, _ in picked:
            if w.id not in won and handed.get(w.id) == token:
                del handed[w.id]
    return out


async def give_back(core: QueueCore, handed: dict[str, str]) -> list[str]:
    """Put the tasks of ``handed`` (task id -> lease token) still leased with that
    token back to pending, their attempt given back, and announce them; their ids."""
    if not handed:
        return []

    def back(rec: Rec) -> Rec:
        return pending(rec, max(0, rec.task.attempt - 1), rec.task.eta)

    ids = sorted(handed)
    items = [
        (i, core._leased(handed[i], back), core._leases.pop((i, handed[i]), None)) for i in ids
    ]
    res = await core._change_many(items)
    core._crash("claim")  # the claim's lease timer re-announces them
    await core._ready_many([(r[1], r[2]) for r in res if r is not None])
    return [i for i, r in zip(ids, res, strict=True) if r is not None]
