"""Flow limits on NATS: one record per limit key in the ``NS_QUEUES`` bucket
(``lim.<sha1 of the key>``), changed by revision-checked writes, so claimers on any
host reserve a key's slots one after the other.

The record lists the claims made under the key (task id, claim token, time) and the
start times inside the rate window. A claim counts as running while the task's own
record shows it running under that token with a lease that has not lapsed (a dead
worker's slot frees when its lease does), or, for a moment after the reservation
(``GRACE``), while the claim write is still on its way.

A claim may stand by behind another one of the same worker (``stand_by``: ``behind``
names the claim, id and token): its task is claimed ahead and runs in that claim's
slot once that run ended, so while both are listed they take one slot (``slots``).
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING

import msgspec

from omniq.models import LimitInfo, LimitSpec, TaskStatus, unit_of

from ._conn import kv_puts, subscribe_direct, write_now
from ._engine import NatsEngine
from ._records import enc, rec_dec

if TYPE_CHECKING:
    from nats.aio.msg import Msg

__all__ = [
    "GRACE",
    "admit",
    "limit_infos",
    "limit_kv_key",
    "limits_freed",
    "register",
    "relist",
    "slots",
    "stand_by",
    "transfer",
    "transfer_put",
    "wait_for_limits",
]

GRACE = 2.0
"""Seconds a reservation counts as running before its claim write shows."""

PREFIX = "lim."


class _Claim(msgspec.Struct, array_like=True):
    id: str
    token: str
    at: float
    behind: tuple[str, str] | None = None
    """The claim (id, token) whose slot this one takes over: a standby."""


def slots(claims: Collection[_Claim]) -> int:
    """The slots ``claims`` take: a standby listed with the claim it stands behind
    shares that claim's slot (one of the two runs at a time)."""
    listed = {(c.id, c.token) for c in claims}
    return sum(1 for c in claims if c.behind is None or c.behind not in listed)


class LimRec(msgspec.Struct, array_like=True):
    key: str
    cap: int | None = None
    rate: int | None = None
    per: float | None = None
    claims: list[_Claim] = msgspec.field(default_factory=list)
    starts: list[float] = msgspec.field(default_factory=list)


_dec = msgspec.msgpack.Decoder(LimRec)


def limit_kv_key(key: str) -> str:
    return PREFIX + hashlib.sha1(key.encode(), usedforsecurity=False).hexdigest()


async def _read(be: NatsEngine, kv_key: str, leader: bool) -> tuple[bytes | None, int]:
    return await be.js.kv_get(be.queues_bucket, kv_key, leader=leader)


async def _live(be: NatsEngine, rec: LimRec, t: float) -> list[_Claim]:
    """The claims of ``rec`` still running (or just reserved)."""
    if not rec.claims:
        return []
    got = await be.js.kv_get_many(be.tasks_bucket, [c.id for c in rec.claims])
    out: list[_Claim] = []
    for c, (raw, _) in zip(rec.claims, got, strict=True):
        if not raw:
            continue
        try:
            r = rec_dec.decode(raw)
        except msgspec.DecodeError:
            continue
        if r.token == c.token and r.task.status is TaskStatus.RUNNING:
            if r.until is not None and r.until > t:
                out.append(c)
        elif r.task.status is TaskStatus.PENDING and c.at > t - GRACE:
            out.append(c)
    return out


async def admit(
    be: NatsEngine, spec: LimitSpec, ids: Sequence[str], token: str, t: float
) -> tuple[list[str], float | None]:
    """Reserve slots of ``spec.key`` for the first of ``ids`` that fit; returns those
    and, when some did not fit for the key's rate, how long until it has budget again
    (seconds; None when the rate did not hold them: a slot frees when a task ends)."""
    kv_key = limit_kv_key(spec.key)
    rate = spec.rate
    leader = False
    while True:
        raw, rev = await _read(be, kv_key, leader)
        rec = LimRec(spec.key) if not raw else _dec.decode(raw)
        live = await _live(be, rec, t) if spec.max_concurrency is not None else []
        starts = [s for s in rec.starts if rate is not None and s > t - rate.window]
        if live:  # a task reserved or running under a claim already is not admitted again
            listed = {c.id for c in live}
            ids = [i for i in ids if i not in listed]
        room = len(ids)
        if spec.max_concurrency is not None:
            room = min(room, spec.max_concurrency - slots(live))
        if rate is not None:
            recent = sum(1 for s in starts if s > t - rate.burst_window)
            room = min(room, rate.count - len(starts), rate.burst - recent)
        take = list(ids[: max(0, room)])
        new = LimRec(
            spec.key,
            spec.max_concurrency,
            None if rate is None else rate.count,
            None if rate is None else rate.window,
            claims=[*live, *(_Claim(i, token, t) for i in take)],
            starts=[*starts, *([t] * len(take) if rate is not None else [])],
        )
        changed = take or raw is None or new != rec
        if changed and await be.js.kv_put(be.queues_bucket, kv_key, enc.encode(new), rev) is None:
            leader = True
            continue
        wait = None
        if len(take) < len(ids) and rate is not None:
            if len(new.starts) >= rate.count:
                wait = max(0.01, min(new.starts) + rate.window - t)
            else:  # held by the burst: the oldest start inside the burst window ages out
                inside = [s for s in new.starts if s > t - rate.burst_window]
                if len(inside) >= rate.burst:
                    wait = max(0.005, min(inside) + rate.burst_window - t)
        return take, wait


def transfer_put(
    be: NatsEngine,
    spec: LimitSpec,
    got: tuple[bytes | None, int],
    ids: Sequence[str],
    *,
    ended: Collection[tuple[str, str]],
    token: str,
    t: float,
) -> tuple[tuple[str, bytes, dict[str, str] | None], list[str]] | None:
    """The write of ``transfer`` (a publish to send, revision-checked) and the ids it
    reserves, or None when the record read has no room that way."""
    raw, rev = got
    cap = spec.max_concurrency
    if not raw or cap is None or spec.rate is not None:
        return None
    rec = _dec.decode(raw)
    kept = [c for c in rec.claims if (c.id, c.token) not in ended]
    listed = {c.id for c in kept}
    take = [i for i in ids if i not in listed][: max(0, cap - slots(kept))]
    if not take:
        return None
    new = LimRec(
        spec.key,
        cap,
        claims=[*kept, *(_Claim(i, token, t) for i in take)],
        starts=rec.starts,
    )
    [put] = kv_puts(be.queues_bucket, [(limit_kv_key(spec.key), enc.encode(new), rev)])
    return put, take


async def transfer(
    be: NatsEngine,
    spec: LimitSpec,
    got: tuple[bytes | None, int],
    ids: Sequence[str],
    *,
    ended: Collection[tuple[str, str]],
    token: str,
    t: float,
) -> list[str] | None:
    """Reserve slots of ``spec.key`` (a cap, no rate) for the first of ``ids`` from its
    record as read before (``got``), without reading the claims' tasks: every claim it
    lists counts as running except ``ended`` (id, token: tasks the caller has finished),
    so the running count can only be overestimated. One revision-checked write; None
    when the record changed since, or has no room that way (the caller then admits as
    usual, which drops the claims no longer running)."""
    planned = transfer_put(be, spec, got, ids, ended=ended, token=token, t=t)
    if planned is None:
        return None
    put, take = planned
    if (await be.js.publish_many([put]))[0] is None:
        return None
    return take


async def stand_by(
    be: NatsEngine,
    spec: LimitSpec,
    got: tuple[bytes | None, int],
    ids: Sequence[str],
    *,
    behind: tuple[str, str],
    token: str,
    t: float,
) -> str | None:
    """List the first of ``ids`` not listed yet as the standby of the claim ``behind``
    (id, token) in ``spec.key``'s record (``got``: as read before; read again from the
    leader when the revision moved). None when that claim is not listed (ended, or
    dropped as no longer running) or has a standby already."""
    kv_key = limit_kv_key(spec.key)
    for _ in range(3):
        raw, rev = got
        if not raw:
            return None
        rec = _dec.decode(raw)
        if behind not in {(c.id, c.token) for c in rec.claims} or any(
            c.behind == behind for c in rec.claims
        ):
            return None
        listed = {c.id for c in rec.claims}
        free = [i for i in ids if i not in listed]
        if not free:
            return None
        rec.claims = [*rec.claims, _Claim(free[0], token, t, behind)]
        if await be.js.kv_put(be.queues_bucket, kv_key, enc.encode(rec), rev) is not None:
            return free[0]
        got = await _read(be, kv_key, True)
    return None


async def relist(be: NatsEngine, key: str, claims: Collection[tuple[str, str]], t: float) -> None:
    """List ``claims`` (id, token) in ``key``'s record again, where missing: after a
    transfer dropped them with a finish that then failed, so a task whose completion
    may not be stored counts as running until its lease lapses (an overcount at
    worst). Best effort, a few tries."""
    kv_key = limit_kv_key(key)
    for _ in range(5):
        raw, rev = await _read(be, kv_key, True)
        if not raw:
            return
        rec = _dec.decode(raw)
        have = {(c.id, c.token) for c in rec.claims}
        missing = [c for c in claims if c not in have]
        if not missing:
            return
        rec.claims = [*rec.claims, *(_Claim(i, tok, t) for i, tok in missing)]
        if await be.js.kv_put(be.queues_bucket, kv_key, enc.encode(rec), rev) is not None:
            return


async def register(be: NatsEngine, specs: Sequence[LimitSpec]) -> None:
    """Create the records of keys not seen before (so ``list_limits`` shows them)."""
    items = []
    for spec in specs:
        rate = spec.rate
        rec = LimRec(
            spec.key,
            spec.max_concurrency,
            None if rate is None else rate.count,
            None if rate is None else rate.window,
        )
        items.append((limit_kv_key(spec.key), enc.encode(rec), 0))
    await be.js.kv_put_many(be.queues_bucket, items)  # last=0: only where missing


async def limit_infos(be: NatsEngine, t: float) -> list[LimitInfo]:
    """Every limit key's running count and remaining rate budget."""
    out: list[LimitInfo] = []
    msgs = await be.js.scan(
        f"KV_{be.queues_bucket}", f"$KV.{be.queues_bucket}.{PREFIX}>", last_per_subject=True
    )
    for m in msgs:
        if not m.data:
            continue
        try:
            rec = _dec.decode(m.data)
        except msgspec.DecodeError:
            continue
        live = await _live(be, rec, t)
        starts = sum(1 for s in rec.starts if rec.per is not None and s > t - rec.per)
        unit = unit_of(rec.per or 1.0)
        out.append(
            LimitInfo(
                key=rec.key,
                running=slots(live),
                max_concurrency=rec.cap,
                rate_limit=None if rec.rate is None else f"{rec.rate}/{unit}",
                remaining=None if rec.rate is None else max(0, rec.rate - starts),
            )
        )
    return sorted(out, key=lambda i: i.key)


def _freed_subject(be: NatsEngine) -> str:
    """Core NATS subject (no stream keeps it) ``limits_freed`` publishes queue names on."""
    return f"{be.ns}.ctl.limfree"


async def limits_freed(be: NatsEngine, queues: Sequence[str]) -> None:
    """Tell the workers pausing for held work on ``queues`` that concurrency slots
    freed (fire and forget: a pause missing it ends on its own)."""
    nc = be.js.nc
    for q in dict.fromkeys(queues):
        await nc.publish(_freed_subject(be), q.encode())
    write_now(nc)


async def wait_for_limits(be: NatsEngine, queues: Sequence[str], timeout: float) -> bool:  # noqa: ASYNC109
    """Until ``limits_freed`` names one of ``queues`` (True) or ``timeout`` passes."""
    names = {q.encode() for q in queues}
    key = object()  # this wait's own key

    def cb(msg: Msg) -> None:
        if msg.data in names:
            be.wake.notify((key,))

    with be.wake.watch([key]) as woken:
        sub = await subscribe_direct(be.js.nc, _freed_subject(be), cb)
        try:
            return await woken.wait(timeout)
        finally:
            with contextlib.suppress(Exception):  # the connection may be gone already
                await sub.unsubscribe()
