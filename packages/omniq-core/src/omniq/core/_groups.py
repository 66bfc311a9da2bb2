"""Chains and groups on the ``OmniQ`` facade (async + ``_sync``).

Both compile to conditional dependents (``Task.run_if``) that pass results
(``Task.pass_results``), stored in one ``enqueue_many`` batch, so the store releases
each step in the same atomic step that ends the previous one (docs/workflows.md):

- ``enqueue_chain([t1, t2, t3])``: ``t2`` depends on ``t1``, runs only if it succeeded
  and receives its value as first argument; likewise ``t3`` on ``t2``. A link that fails
  ends every later link cancelled without running.
- ``enqueue_group([t...], then=cb)``: the members run independently; ``cb`` depends on
  all of them and receives their values as a list in member order. The first member's
  metadata holds the member list, so ``get_group`` reads a group in two batched reads.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import msgspec

from omniq.models import Group, GroupStatus, Task, WorkflowError, validate_task
from omniq.queue._workflow import CALLBACK_OF_KEY

from ._session import Session

__all__ = ["GroupOps"]

T = TypeVar("T")

GROUP_KEY = "group"
"""Metadata key holding the group id on every member (``CALLBACK_OF_KEY`` on the
callback)."""
MEMBERS_KEY = "group_members"
"""Metadata key holding the member ids, on the first member (whose id is the group's)."""
CALLBACK_KEY = "group_callback"
"""Metadata key holding the callback's id, on the first member."""

EnqueueOp = Callable[[Session, list[Task]], Awaitable[list[Task]]]


class GroupOps:
    """Enqueue chains and groups; read a group's progress."""

    if TYPE_CHECKING:
        _enqueue_op: EnqueueOp

        async def _call(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T: ...

        def _call_sync(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T: ...

    # -- chains ------------------------------------------------------------------------------

    async def enqueue_chain(self, tasks: Sequence[Task]) -> list[Task]:
        """Store ``tasks`` (from ``oq.build``) as a chain: each runs after the previous
        one succeeds and receives its value as first positional argument. Returns the
        stored tasks in order; the last one's result is the chain's result. If a link
        fails (or is cancelled or expires), every later link ends cancelled without
        running. One ``enqueue_many`` round trip (after one read checking that no task is
        already stored). Raises ``WorkflowError`` for an empty list, a non-Task, a task
        already stored, or a link after the first with its own ``depends_on``/``run_if``/
        ``pass_results``."""
        return await self._call(_store_checked, self._enqueue_op, compile_chain(tasks))

    def enqueue_chain_sync(self, tasks: Sequence[Task]) -> list[Task]:
        """Blocking ``enqueue_chain``."""
        return self._call_sync(_store_checked, self._enqueue_op, compile_chain(tasks))

    # -- groups ------------------------------------------------------------------------------

    async def enqueue_group(
        self,
        tasks: Sequence[Task],
        *,
        then: Task | None = None,
        then_if: Literal["finished", "succeeded"] = "finished",
    ) -> Group:
        """Store ``tasks`` (from ``oq.build``) as a group, with an optional callback
        ``then`` that runs once every member is terminal and receives, as first
        positional argument, a list with one entry per member in member order.

        ``then_if="finished"`` (default): ``then`` always runs; each entry is a mapping
        ``{"task_id", "status", "value", "error", "attempts", "finished_at"}`` describing
        how that member ended (``value`` None and ``error`` set for a failed one).
        ``then_if="succeeded"``: ``then`` runs only if every member succeeded, and gets
        the plain values; otherwise it ends cancelled without running.

        Returns the ``Group`` (``oq.get_group(group.id)`` reports its progress). One
        ``enqueue_many`` round trip (after one read checking that no task is already
        stored). Raises ``WorkflowError`` for an empty list, a non-Task, a task already
        stored, a repeated task, or a ``then`` with its own ``depends_on``/``run_if``/
        ``pass_results``."""
        batch = compile_group(tasks, then, then_if)
        stored = await self._call(_store_checked, self._enqueue_op, batch)
        return _group_of(stored, then is not None)

    def enqueue_group_sync(
        self,
        tasks: Sequence[Task],
        *,
        then: Task | None = None,
        then_if: Literal["finished", "succeeded"] = "finished",
    ) -> Group:
        """Blocking ``enqueue_group``."""
        batch = compile_group(tasks, then, then_if)
        stored = self._call_sync(_store_checked, self._enqueue_op, batch)
        return _group_of(stored, then is not None)

    async def get_group(self, group_id: str | Group) -> GroupStatus | None:
        """Counts of the group's members by status, or None for an unknown group (or
        one whose first member the store no longer holds)."""
        gid = group_id.id if isinstance(group_id, Group) else group_id
        return await self._call(_get_group, gid)

    def get_group_sync(self, group_id: str | Group) -> GroupStatus | None:
        """Blocking ``get_group``."""
        gid = group_id.id if isinstance(group_id, Group) else group_id
        return self._call_sync(_get_group, gid)


def _check_members(tasks: Sequence[Task], what: str) -> list[Task]:
    items = list(tasks)
    if not items:
        raise WorkflowError(f"{what} needs at least one task")
    for t in items:
        if not isinstance(t, Task):
            raise WorkflowError(f"{what} members must be Tasks (oq.build), got {type(t).__name__}")
    if len({t.id for t in items}) != len(items):
        raise WorkflowError(f"{what} has the same task twice")
    return [validate_task(t) for t in items]


def _check_free(t: Task, what: str) -> None:
    if t.depends_on or t.run_if is not None or t.pass_results:
        raise WorkflowError(f"{what} {t.id} sets depends_on/run_if/pass_results itself")


def compile_chain(tasks: Sequence[Task]) -> list[Task]:
    """The chain's tasks, each after the first depending on its predecessor with
    ``run_if="succeeded"`` and ``pass_results``."""
    items = _check_members(tasks, "a chain")
    out = [items[0]]
    for t in items[1:]:
        _check_free(t, "chain link")
        out.append(
            msgspec.structs.replace(
                t, depends_on=(out[-1].id,), run_if="succeeded", pass_results=True
            )
        )
    return out


def compile_group(
    tasks: Sequence[Task], then: Task | None, then_if: Literal["finished", "succeeded"]
) -> list[Task]:
    """The members tagged with the group id (the first member's), the first carrying
    the member list, then the callback depending on all of them."""
    items = _check_members(tasks, "a group")
    if then_if not in ("finished", "succeeded"):
        raise WorkflowError(f"then_if must be 'finished' or 'succeeded', not {then_if!r}")
    gid = items[0].id
    ids = [t.id for t in items]
    if then is not None:
        if not isinstance(then, Task):
            raise WorkflowError(f"then must be a Task (oq.build), got {type(then).__name__}")
        if then.id in ids:
            raise WorkflowError("then is also a member of the group")
        _check_free(then, "group callback")
    out: list[Task] = []
    for i, t in enumerate(items):
        meta = {**t.metadata, GROUP_KEY: gid}
        if i == 0:
            meta[MEMBERS_KEY] = ids
            if then is not None:
                meta[CALLBACK_KEY] = then.id
        out.append(msgspec.structs.replace(t, metadata=meta))
    if then is not None:
        out.append(
            msgspec.structs.replace(
                validate_task(then),
                depends_on=tuple(ids),
                run_if=then_if,
                pass_results=True,
                metadata={**then.metadata, CALLBACK_OF_KEY: gid},
            )
        )
    return out


def _group_of(stored: list[Task], has_callback: bool) -> Group:
    members = stored[:-1] if has_callback else stored
    return Group(
        id=members[0].id,
        tasks=tuple(members),
        callback=stored[-1] if has_callback else None,
    )


async def _store_checked(session: Session, op: EnqueueOp, batch: list[Task]) -> list[Task]:
    """Refuse a batch holding a task already stored (one read), then store it."""
    known = await session.queue.tasks.get([t.id for t in batch])
    for t, k in zip(batch, known, strict=True):
        if k is not None:
            raise WorkflowError(f"task {t.id} is already stored; build a new one")
    return await op(session, batch)


async def _get_group(session: Session, gid: str) -> GroupStatus | None:
    first = await session.queue.get_task(gid)
    if first is None or first.metadata.get(GROUP_KEY) != gid:
        return None
    ids = [str(i) for i in first.metadata.get(MEMBERS_KEY, [gid])]
    members = await session.queue.tasks.get(ids)
    counts = Counter(m.status.value for m in members if m is not None)
    finished = all(m is not None and m.status.is_terminal for m in members)
    cb = first.metadata.get(CALLBACK_KEY)
    return GroupStatus(
        id=gid,
        total=len(ids),
        counts=dict(counts),
        finished=finished,
        callback_id=str(cb) if cb is not None else None,
    )
