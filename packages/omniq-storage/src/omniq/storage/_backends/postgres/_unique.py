"""Unique jobs on PostgreSQL: enqueue of keyed tasks under a per-key advisory lock.

A task with ``unique_for`` leaves a row in ``task_unique`` (key, task id, end of the
window), written in the transaction that stores the task. Every enqueue of a keyed task
locks its keys (transaction-scoped advisory locks, schema-qualified, in key order),
then returns the task a live window names instead of storing a new one; the other
tasks go through the ordinary enqueue statements on the same connection. A pending
holder met with ``on_conflict="replace"`` gets the new payload and eta by an update
that only matches while it is still pending.
"""

from __future__ import annotations

import builtins
import contextlib
import copy
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol, TypeVar

from omniq.models import Task, TaskStatus, now
from omniq.storage._corrupt import CORRUPT_FUNC, read_task
from omniq.storage._interfaces import DependencyPolicy
from omniq.storage._remote import encode, with_state_eta

from ._sql import QUERIES as _Q

__all__ = ["enqueue_keyed"]

T = TypeVar("T")
S = TypeVar("S", bound="_Store")


class _Store(Protocol):
    """What this module needs of the task queue (``PgTaskQueue``)."""

    _be: Any

    async def _call(self, fn: Callable[..., Awaitable[T]]) -> T: ...


class _Fixed:
    """The backend with ``call`` running on one connection already held (no savepoint:
    the caller's transaction is the unit)."""

    def __init__(self, backend: Any, conn: Any) -> None:
        self._backend = backend
        self._conn = conn

    def __getattr__(self, name: str) -> Any:
        return getattr(self._backend, name)

    async def call(self, fn: Callable[[Any], Awaitable[T]]) -> T:
        return await fn(self._conn)


def _holder(r: Any, queue: str) -> Task:
    task = read_task(r["o_envelope"], r["o_id"], queue, r["o_status"], r["o_attempt"], always=True)
    assert task is not None  # always=True: a stand-in, never None
    if task.func == CORRUPT_FUNC:
        return task
    return with_state_eta(task, TaskStatus(r["o_status"]), r["o_attempt"], r["o_eta"])


async def enqueue_keyed(
    store: S,
    tasks: Sequence[Task],
    policy: DependencyPolicy,
    inner: Callable[[S, Sequence[Task], DependencyPolicy], Awaitable[list[Task]]],
) -> builtins.list[Task]:
    """``enqueue`` of a batch holding keyed tasks (see the module docstring); ``inner``
    is the ordinary enqueue, run on the locked connection for the tasks not resolved to
    a window's holder."""
    keys = sorted({t.key for t in tasks if t.key is not None})
    stamp = now()

    async def run(c: Any) -> builtins.list[Task]:
        tx = c.transaction() if hasattr(c, "transaction") else contextlib.nullcontext()
        async with tx:
            await c.execute(_Q["unique_lock"], keys)
            held: dict[str, Task] = {
                r["o_key"]: _holder(r, r["o_queue"])
                for r in await c.fetch(_Q["unique_holders"], keys, stamp)
            }
            rest = [t for t in tasks if t.key is None or t.key not in held]
            bound = copy.copy(store)
            bound._be = _Fixed(store._be, c)
            stored = iter(await inner(bound, rest, policy) if rest else [])
            out: builtins.list[Task] = []
            firsts: dict[str, Task] = {}
            for t in tasks:
                got = held[t.key] if t.key is not None and t.key in held else next(stored)
                if t.key is not None and got.id == t.id and t.unique_for is not None:
                    firsts.setdefault(t.key, t)
                out.append(got)
            if firsts:
                ks = builtins.list(firsts)
                await c.execute(
                    _Q["unique_reserve"],
                    ks,
                    [firsts[k].id for k in ks],
                    [firsts[k].created_at + (firsts[k].unique_for or 0.0) for k in ks],
                )
            for i, (t, got) in enumerate(zip(tasks, out, strict=True)):
                if t.on_conflict == "replace" and got.id != t.id:
                    out[i] = await _replace(store, c, t, got)
            return out

    return await store._call(run)


async def _replace(store: _Store, c: Any, new: Task, old: Task) -> Task:
    """Give the pending ``old`` the payload and eta of ``new``; ``old`` as it now is
    when it is no longer pending."""
    if old.status is not TaskStatus.PENDING or old.func == CORRUPT_FUNC:
        return old
    import msgspec

    upd = msgspec.structs.replace(old, payload=new.payload, eta=new.eta)
    rows = await c.fetch(_Q["unique_replace"], old.id, encode(upd), new.eta, store._be.work_channel)
    if rows:
        return upd
    r = await c.fetchrow(_Q["unique_current"], old.id)
    return old if r is None else _holder(r, old.queue)
