"""Claims for freed concurrency slots from the work a claim held back (NATS backend).

A claim that holds tasks back by their key's concurrency cap naks their messages with a
delay (``_tasks.CAP_HELD``), so while a key is full its backlog is mostly out of reach
of a pull: the worker that frees a slot would find nothing to pull and the slot would
stay empty until a message came back. So each claim remembers the first messages it
held back by a cap (id, ready generation, record, revision: ``_records.Work``), and the
claim a worker makes for the slots it just freed (``claim_limited``, or the claim half
of ``finish_and_claim``) leases from those:

1. ``prepare``, one round trip (run alongside the finish in ``finish_and_claim``): the
   remembered tasks' records (only those still pending at that generation are
   candidates), their keys' limit records, the ready subjects and the paused queues;
2. ``claim_prepared``: the key's reservation, by ``_flow.transfer`` (one
   revision-checked write of the record read in step 1, the claims just finished
   dropped) or, when the record moved, by the usual admission; then the usual
   revision-checked lease writes behind the claim's lease timer and the paused-queue
   fence.

The messages stay in the stream: the pull in this process that later brings one acks
it unread (``QueueCore._taken``); elsewhere it is dropped like any message whose task
moved on. The remembered messages are the head of the highest-priority ready work when
they were held: when a subject of a higher priority than theirs has messages now, or
none is still pending, the usual claim runs instead, so a remembered task never jumps
ahead of work of a higher priority.
"""

from __future__ import annotations

import functools
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from omniq.models import ClaimedTask, LimitSpec, TaskStatus, limit_of, new_id, now
from omniq.storage._remote import claimed

from ._conn import token as key_of
from ._flow import admit, limit_kv_key, stand_by, transfer, transfer_put
from ._records import CorruptRec, Rec, Work, claim_fn, decode_rec, enc

if TYPE_CHECKING:
    from ._tasks import QueueCore

__all__ = [
    "Plan",
    "Prepared",
    "claim_held",
    "claim_prepared",
    "claim_standby",
    "plan",
    "prepare",
]


@dataclass
class Prepared:
    """What ``prepare`` read: the candidates (message, record, revision) in the order
    they were held, and each of their keys' limit record with its revision."""

    fresh: list[tuple[Work, Rec, int]]
    limits: dict[str, tuple[bytes | None, int]]


async def prepare(core: QueueCore, queues: Sequence[str], limit: int) -> Prepared | None:
    """Step 1 (one round trip): None when no remembered task is still a candidate, or
    work of a higher priority than theirs is ready (the usual claim runs instead).
    Reads the first ``2 * limit + 2`` remembered tasks (some may have been taken by
    others since; each read is a request of its own)."""
    held = core._remembered(queues)[: 2 * limit + 2]
    if not held:
        return None
    be = core._be
    top = max(rec.task.priority for _, rec in held)
    keys = list(dict.fromkeys(s.key for _, rec in held if (s := limit_of(rec.task)) is not None))
    subjects, paused, (got, lims) = await core._probe(
        [
            (be.tasks_bucket, [key_of(w.id) for w, _ in held]),
            (be.queues_bucket, [limit_kv_key(k) for k in keys]),
        ]
    )
    live = [q for q in queues if q not in paused]
    ready = core._candidates(subjects, live)
    if ready and ready[0][0] > top:
        return None  # higher-priority work is ready: the usual claim takes it first
    fresh: list[tuple[Work, Rec, int]] = []
    t = now()
    for (w, _), (raw, rev) in zip(held, got, strict=True):
        if raw is None:
            continue
        try:
            rec = decode_rec(w.id, raw, rev)
        except CorruptRec:
            continue  # the usual claim quarantines it
        task = rec.task
        if (
            task.status is TaskStatus.PENDING
            and rec.gen == w.gen
            and not rec.blocked
            and task.queue in live
            and (task.expires_at is None or task.expires_at > t)
        ):
            fresh.append((w, rec, rev))
    stale = {w.id for w, _ in held} - {w.id for w, _, _ in fresh}
    kept = core._remembered(queues)
    kept[:] = [h for h in kept if h[0].id not in stale]
    if not fresh:
        return None
    return Prepared(fresh, dict(zip(keys, lims, strict=True)))


def _groups(prep: Prepared) -> dict[str, tuple[LimitSpec, list[tuple[Work, Rec, int]]]]:
    groups: dict[str, tuple[LimitSpec, list[tuple[Work, Rec, int]]]] = {}
    for w, rec, rev in prep.fresh:
        spec = limit_of(rec.task)
        if spec is not None:
            groups.setdefault(spec.key, (spec, []))[1].append((w, rec, rev))
    return groups


@dataclass
class Plan:
    """A transfer planned ahead (``plan``): the claim's token and time, the limit
    record's write to send and the ids it reserves, per key."""

    token: str
    t: float
    puts: list[tuple[str, bytes, dict[str, str] | None]]
    keys: list[tuple[str, list[str]]]


def plan(core: QueueCore, prep: Prepared, limit: int, ended: Collection[tuple[str, str]]) -> Plan:
    """The transfers of step 2 as writes to send with the finish's completion writes
    (``finish_and_claim``): each key's record as ``prepare`` read it, the ``ended``
    claims dropped. Sent behind the completion writes, a reservation can show before
    its finished claim's completion is stored, never before the claim it replaces left
    the record, and the new task is leased only once both are acknowledged."""
    out = Plan(new_id(), now(), [], [])
    left = limit
    for key, (spec, group) in _groups(prep).items():
        got = prep.limits.get(key)
        if left <= 0 or got is None:
            break
        ids = [w.id for w, _, _ in group][:left]
        planned = transfer_put(core._be, spec, got, ids, ended=ended, token=out.token, t=out.t)
        if planned is not None:
            out.puts.append(planned[0])
            out.keys.append((key, planned[1]))
            left -= len(planned[1])
    return out


async def claim_prepared(
    core: QueueCore,
    prep: Prepared,
    queues: Sequence[str],
    *,
    worker_id: str,
    limit: int,
    lease: float,
    ended: Collection[tuple[str, str]] = (),
    planned: Plan | None = None,
    answers: Sequence[int | None] = (),
) -> list[ClaimedTask]:
    """Step 2: reserve slots for up to ``limit`` of the candidates and lease them.
    ``ended``: (id, token) of the claims the caller finished since ``prepare``.
    ``planned``/``answers``: the transfers ``plan`` made and what their writes got (a
    key whose write was refused or not sent is admitted as usual)."""
    be = core._be
    token, t = new_id(), now()
    reserved: dict[str, list[str]] = {}
    if planned is not None:
        token, t = planned.token, planned.t
        for (key, ids), answer in zip(planned.keys, answers, strict=False):
            if answer is not None:
                reserved[key] = ids
    until = t + lease
    groups = _groups(prep)
    take: list[tuple[Work, Rec, int]] = []
    core.limited = []
    core.limited_wait = None
    core.admitted = None
    for key, (spec, group) in groups.items():
        want = limit - len(take)
        if want <= 0:
            break
        ids = [w.id for w, _, _ in group]
        got = prep.limits.get(key)
        ok = reserved.get(key)
        if ok is None and got is not None and planned is None:
            ok = await transfer(be, spec, got, ids[:want], ended=ended, token=token, t=t)
        if ok is None:
            ok, _ = await admit(be, spec, ids[:want], token, t)
        elif len(ok) < min(want, len(group)):
            # The record read still listed claims no longer running (a transfer drops
            # only the caller's): the usual admission drops those, and may find room.
            rest = [i for i in ids if i not in set(ok)][: want - len(ok)]
            more, _ = await admit(be, spec, rest, token, t)
            ok = [*ok, *more]
        if len(ok) < min(want, len(group)):
            core.limited.append(key)
        okset = set(ok)
        take += [i for i in group if i[0].id in okset]
    if not take:
        return []
    return await _lease(core, take, queues, worker_id=worker_id, token=token, t=t, until=until)


async def _lease(
    core: QueueCore,
    take: Sequence[tuple[Work, Rec, int]],
    queues: Sequence[str],
    *,
    worker_id: str,
    token: str,
    t: float,
    until: float,
    ahead: bool = False,
) -> list[ClaimedTask]:
    """Lease the reserved candidates ``take`` (revision-checked writes behind the
    claim's lease timer; ``ahead``: as standbys), then the paused-queue fence."""
    be = core._be
    fn = functools.partial(claim_fn, token=token, until=until, worker=worker_id, t=t, ahead=ahead)
    items = [(w.id, functools.partial(fn, gen=w.gen), (rev, rec)) for w, rec, rev in take]
    timer = (f"{be.ns}.timer.lease", enc.encode([token, until, [w.id for w, _, _ in take]]), None)
    res = await core._change_many(items, lead=[timer])
    core._crash("claim")
    out: list[ClaimedTask] = []
    won: set[str] = set()
    for r in res:
        if r is not None:
            core._remember(r[1], r[2])
            if len(core._taken) > 10_000:
                core._taken.clear()
            core._taken[r[1].task.id] = r[1].gen
            won.add(r[1].task.id)
            out.append(claimed(r[1].task, token, until, worker_id))
    held = core._remembered(queues)
    held[:] = [h for h in held if h[0].id not in won]
    if out:
        out = await core._fence_paused(out, token)
    return out


async def claim_standby(
    core: QueueCore, queues: Sequence[str], behind: ClaimedTask, worker_id: str, lease: float
) -> ClaimedTask | None:
    """A task of ``behind``'s limit key (a cap without a rate) claimed to run in its
    slot once its run ended: ``prepare`` for one, then the candidate listed as the
    standby of ``behind``'s claim (``_flow.stand_by``) and leased. None when no
    remembered candidate of that key is pending or the claim has ended or has a
    standby already."""
    spec = limit_of(behind.task)
    if spec is None or spec.max_concurrency is None or spec.rate is not None:
        return None
    prep = await prepare(core, queues, 1)
    if prep is None:
        return None
    group = _groups(prep).get(spec.key)
    got = prep.limits.get(spec.key)
    if group is None or got is None:
        return None
    token, t = new_id(), now()
    ids = [w.id for w, _, _ in group[1]]
    ref = (behind.task.id, behind.token)
    chosen = await stand_by(core._be, spec, got, ids, behind=ref, token=token, t=t)
    if chosen is None:
        return None
    take = [x for x in group[1] if x[0].id == chosen]
    out = await _lease(
        core, take, queues, worker_id=worker_id, token=token, t=t, until=t + lease, ahead=True
    )
    return out[0] if out else None


async def claim_held(
    core: QueueCore, queues: Sequence[str], worker_id: str, limit: int, lease: float
) -> list[ClaimedTask] | None:
    """``prepare`` then ``claim_prepared``; None when ``prepare`` found nothing to try
    (the caller makes the usual claim)."""
    prep = await prepare(core, queues, limit)
    if prep is None:
        return None
    return await claim_prepared(core, prep, queues, worker_id=worker_id, limit=limit, lease=lease)
