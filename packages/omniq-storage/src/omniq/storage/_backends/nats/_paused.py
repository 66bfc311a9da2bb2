"""Paused queues of the NATS backend: one revision-checked record in ``NS_QUEUES``.

The record (key ``paused``) holds the sorted names of the paused queues; a pause or
resume rewrites it checked against the revision it read. A claim reads it before
pulling (paused queues are not pulled from) and, when it leased anything, reads it
again from the stream leader after its lease writes and gives back, unrun, every task
of a queue paused in between. A pause that returned was stored before that second
read began, so its queue's tasks are never handed to a worker from then on; a lease
written before the pause was stored stands (the task had started), as it does on the
other engines.
"""

from __future__ import annotations

from typing import Any

from ._engine import NatsEngine
from ._records import any_dec, enc

__all__ = ["KEY", "change_paused", "paused_names", "read_paused", "resumed_subject"]

KEY = "paused"


def resumed_subject(be: NatsEngine) -> str:
    """Core NATS subject (no stream keeps it) a resume publishes the queue name on, to
    wake the workers waiting on it."""
    return f"{be.ns}.ctl.resumed"


def paused_names(raw: bytes | None) -> frozenset[str]:
    """The paused queues the record's value ``raw`` names (none for no record)."""
    if not raw:
        return frozenset()
    got: Any = any_dec.decode(raw)
    return frozenset(q for q in got if isinstance(q, str)) if isinstance(got, list) else frozenset()


async def read_paused(be: NatsEngine, *, leader: bool = False) -> tuple[frozenset[str], int]:
    """(paused queues, record revision). ``leader``: read from the stream leader (a
    direct get may be served by a replica that has not seen the latest write)."""
    raw, rev = await be.js.kv_get(be.queues_bucket, KEY, leader=leader)
    return paused_names(raw), rev


async def change_paused(be: NatsEngine, queue: str, paused: bool) -> bool:
    """Add (``paused``) or remove ``queue``; True if that changed the record."""
    while True:
        names, rev = await read_paused(be, leader=True)
        if (queue in names) == paused:
            return False
        new = names | {queue} if paused else names - {queue}
        if await be.js.kv_put(be.queues_bucket, KEY, enc.encode(sorted(new)), rev) is not None:
            return True
