"""Lease ends, sweeps, reads and waits of the NATS task queue (model: ``_tasks``).

``reclaim_expired``/``expire`` pull only the lease/TTL timers that are due (the others
are nak'ed with a delay by JetStream), so they cost nothing when nothing expired.
``wait_for_work`` subscribes to the queues' work subjects (an enqueue's own publish
wakes it) and, while delayed tasks exist, keeps a blocking pull on the eta timers so
JetStream wakes it when one becomes due; no sleep-polling.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import functools
import math
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import msgspec

from omniq.models import ClaimedTask, Task, TaskResult, TaskStatus, now
from omniq.storage._corrupt import log
from omniq.storage._interfaces import (
    Backend,
    Completion,
    CompletionReport,
    DependencyPolicy,
    LeaseRef,
    ResultRecord,
    ResultStorage,
    RetryRequest,
    cascades,
)
from omniq.storage._wake import Watch

from ._conn import subscribe_direct, token
from ._control import NatsTaskControl
from ._direct import WOKEN_MAX, claim_woken, give_back, woken_work
from ._engine import NatsEngine
from ._floor import ScanFloor
from ._flow import limits_freed, relist, wait_for_limits
from ._held import Plan, claim_held, claim_prepared, claim_standby, plan, prepare
from ._paused import change_paused, read_paused, resumed_subject
from ._records import CorruptRec, Rec, Work, any_dec, decode_rec, finished, kept_of, lapsed, pending
from ._stores import NatsResults
from ._tasks import QueueCore

if TYPE_CHECKING:
    from nats.aio.msg import Msg

__all__ = ["NatsTaskQueue", "on_timer"]

_replace = msgspec.structs.replace


class NatsTaskQueue(NatsTaskControl, QueueCore):
    """TaskQueueStorage on a KV bucket of records plus a work-queue stream."""

    def __init__(self, be: NatsEngine) -> None:
        super().__init__(be)
        self._purge_floor = ScanFloor(margin=60.0)
        """Skips ``purge`` scans that cannot find a task finished before the cutoff."""

    # -- lease ends ----------------------------------------------------------------

    async def renew(self, leases: Sequence[LeaseRef], lease: float) -> list[str]:
        until = now() + lease

        items = [
            (
                ref.task_id,
                self._leased(ref.token, functools.partial(_replace, until=until)),
                self._leases.get((ref.task_id, ref.token)),
            )
            for ref in leases
        ]
        res = await self._call(lambda: self._change_many(items))
        lost = []
        if self._handed:  # a renewed handover is the worker's: close_inbox leaves it
            for ref in leases:
                for handed in self._handed.values():
                    if handed.get(ref.task_id) == ref.token:
                        del handed[ref.task_id]
        for ref, r in zip(leases, res, strict=True):
            if r is None:
                lost.append(ref.task_id)
            else:
                self._remember(r[1], r[2])
        return lost

    async def finish(
        self,
        completions: Sequence[Completion],
        results: Sequence[TaskResult],
        result_store: ResultStorage | None,
        *,
        lease: float,
        dependency_policy: DependencyPolicy = "cancel",
        record: ResultRecord | None = None,
    ) -> CompletionReport:
        """With this backend's own result store: the fence (the records read: a lease
        still held with more than ``fence_margin`` seconds left needs no write; the
        others are renewed), then the results, acknowledged, then the completions in
        one batch: three round trips, and no renewal write for a task that finishes
        well inside its lease. With replicas, every lease is renewed first.
        ``finish_and_claim`` saves the second round trip (``_inline``)."""
        return await self._finish(
            completions,
            results,
            result_store,
            lease=lease,
            dependency_policy=dependency_policy,
            record=record,
        )

    async def _finish(
        self,
        completions: Sequence[Completion],
        results: Sequence[TaskResult],
        result_store: ResultStorage | None,
        *,
        lease: float,
        dependency_policy: DependencyPolicy,
        record: ResultRecord | None,
        trail: Callable[[set[str]], Awaitable[Sequence[tuple[str, bytes, dict[str, str] | None]]]]
        | None = None,
        trailed: list[int | None] | None = None,
    ) -> CompletionReport:
        """``finish``; with ``trail``, called with the ids the fence found lost, the
        publishes it returns go right behind the completion writes in their batch (see
        ``_change_many``; ``finish_and_claim``'s transfer), their answers appended to
        ``trailed`` (nothing appended: not sent), and small results go inside their
        completion records (``_inline``)."""
        if not (
            results and isinstance(result_store, NatsResults) and result_store.owner is self._be
        ):
            return await super().finish(
                completions,
                results,
                result_store,
                lease=lease,
                dependency_policy=dependency_policy,
                record=record,
            )
        own = (
            record
            if record is not None
            and record.result_store is self.results
            and cascades(completions, dependency_policy)
            else None
        )
        writes = result_store.writes(results)  # checks the payload limit before any write
        inline = None if trail is None else self._inline(results, writes)
        lost = await self._call(lambda: self._fence(completions, lease))
        again: dict[str, Rec] = {}
        if lost:
            again = await self._call(lambda: self._ended_here(completions, lost))
            lost -= again.keys()
            skip = lost | set(again)
            writes = [
                *result_store.writes([r for r in results if r.task_id not in skip]),
                *result_store.writes([r for r in results if r.task_id in again], create=True),
            ]
        kept = [c for c in completions if c.task_id not in lost and c.task_id not in again]
        tail = await trail(lost) if trail is not None else ()
        report = await self._call(
            lambda: self._complete(
                kept,
                dependency_policy,
                writes,
                own,
                trail=tail,
                trailed=trailed,
                again=again,
                inline=inline,
            )
        )
        report.stale = [c.task_id for c in completions if c.task_id in lost] + report.stale
        return report

    inline_max = 1024
    """Encoded bytes up to which a result also rides inside its task's completion
    record (see ``_inline``)."""

    def _inline(
        self,
        results: Sequence[TaskResult],
        writes: Sequence[tuple[str, bytes, dict[str, str] | None]],
    ) -> dict[str, TaskResult] | None:
        """The results to write inside their completion records, by task id, or None
        to store the results before the records instead.

        A result must exist once its task's record says it ended; on one server the
        result and record streams store a batch independently, so a server that stops
        mid-batch may keep the record and drop the result. When every result is small
        (``inline_max``), each completion record holds its result (``Rec.kept``,
        which the result store reads while its own copy is missing) and the results go
        in the same batch as the records: one round trip. Otherwise, and in a cluster,
        the results are acknowledged before the records are sent.

        Only a capped task's hand-off (``finish_and_claim``) does this: there the round
        trip holds a concurrency slot empty. Elsewhere the bytes would ride in every
        finished record, which every scan of the records (``list``, ``count``) reads."""
        if self._be.js.apart() or any(len(w[1]) > self.inline_max for w in writes):
            return None
        return {r.task_id: r for r in results}

    async def _ended_here(
        self, completions: Sequence[Completion], lost: set[str]
    ) -> dict[str, Rec]:
        """The records of the ``lost`` completions that those very completions ended: an
        earlier try of this finish whose record write was stored though the call failed
        (the reply or the connection lost). Its results, sent in the same batch, may not
        have been: the record and result streams store independently, and a server that
        stops drops what one of them had not stored yet. The retry stores those results
        again where none exists (``NatsResults.writes(create=True)``) and reports these
        tasks done, so no task stays ``success`` without its result."""
        mine = [c for c in completions if c.task_id in lost]
        got = await self._be.js.kv_get_many(self._be.tasks_bucket, [token(c.task_id) for c in mine])
        out: dict[str, Rec] = {}
        for c, (raw, rev) in zip(mine, got, strict=True):
            try:
                rec = None if raw is None else decode_rec(c.task_id, raw, rev)
            except CorruptRec:
                continue
            if (
                rec is not None
                and rec.ended_by == c.token
                and rec.task.status is TaskStatus(c.status)
            ):
                out[c.task_id] = rec
        return out

    fence_margin = 5.0
    """Seconds of lease a finishing task must have left for ``finish`` to fence it by
    reading its record (one replica only); with less, its lease is renewed first (a
    write)."""

    async def _fence(self, completions: Sequence[Completion], lease: float) -> set[str]:
        """The tasks of ``completions`` whose lease is lost. A held lease's record and
        revision become the completion's hint. With replicas, a read is answered by the
        stream leader, which is not a quorum check (a leader cut off from its peers
        answers until it steps down): every lease is renewed (a write needs a quorum)."""
        if self._be.replicas > 1:
            return set(await self.renew([LeaseRef(c.task_id, c.token) for c in completions], lease))
        js = self._be.js
        got = await js.kv_get_many(self._be.tasks_bucket, [token(c.task_id) for c in completions])
        t = now()
        lost: set[str] = set()
        renew: list[LeaseRef] = []
        for c, (raw, rev) in zip(completions, got, strict=True):
            try:
                rec = None if raw is None else decode_rec(c.task_id, raw, rev)
            except CorruptRec:
                renew.append(LeaseRef(c.task_id, c.token))  # the renewal deals with it
                continue
            if rec is None or rec.token != c.token or rec.task.status is not TaskStatus.RUNNING:
                lost.add(c.task_id)
            elif rec.until is None or rec.until - t < self.fence_margin:
                renew.append(LeaseRef(c.task_id, c.token))
            else:
                self._remember(rec, rev)
        if renew:
            lost.update(await self.renew(renew, lease))
        return lost

    async def complete(
        self, completions: Sequence[Completion], *, dependency_policy: DependencyPolicy = "cancel"
    ) -> CompletionReport:
        return await self._call(lambda: self._complete(completions, dependency_policy, ()))

    async def complete_with_results(
        self,
        completions: Sequence[Completion],
        record: ResultRecord,
        *,
        dependency_policy: DependencyPolicy = "cancel",
    ) -> CompletionReport:
        """A failed task's record write also holds the retention its cascade's results
        take (``_seeded``), so each write cancelling a dependent holds that dependent's
        result (``Rec.result``, as ``cancel`` does), even when a guard's re-check does the
        cancelling after a crash."""
        if record.result_store is not self.results:
            return await super().complete_with_results(
                completions, record, dependency_policy=dependency_policy
            )
        return await self._call(lambda: self._complete(completions, dependency_policy, (), record))

    async def _complete(
        self,
        completions: Sequence[Completion],
        dependency_policy: DependencyPolicy,
        lead: Sequence[tuple[str, bytes, dict[str, str] | None]],
        own: ResultRecord | None = None,
        *,
        trail: Sequence[tuple[str, bytes, dict[str, str] | None]] = (),
        trailed: list[int | None] | None = None,
        again: Mapping[str, Rec] | None = None,
        inline: Mapping[str, TaskResult] | None = None,
    ) -> CompletionReport:
        """End ``completions``, ``lead`` (their results) sent ahead in the batch. Each
        ended record names the completion's token (``Rec.ended_by``). ``again``: tasks an
        earlier try of the same finish ended (``_finish``), reported done and their
        dependents resolved as if this call had ended them (resolving is idempotent).
        ``inline``: results each ended record holds (``_inline``); with them, ``lead``
        goes in the records' batch instead of being stored before it."""
        t = now()

        def fn(rec: Rec, token: str, status: TaskStatus) -> Rec | None:
            if rec.token != token or rec.task.status is not TaskStatus.RUNNING:
                return None
            res = None if inline is None else inline.get(rec.task.id)
            kept = None if res is None else kept_of(res)
            if own is not None and rec.dependents and status is not TaskStatus.SUCCESS:
                return _replace(_seeded(finished(rec, status, t), own), ended_by=token, kept=kept)
            return _replace(finished(rec, status, t), ended_by=token, kept=kept)

        async def run() -> CompletionReport:
            ok = [c for c in completions if TaskStatus(c.status).is_terminal]
            items = [
                (
                    c.task_id,
                    functools.partial(fn, token=c.token, status=TaskStatus(c.status)),
                    self._leases.pop((c.task_id, c.token), None),
                )
                for c in ok
            ]
            # No record says its task ended without its result: the record holds it
            # (``inline``) or the results are stored before the records are sent.
            res = await self._change_many(
                items,
                lead=lead,
                trail=trail,
                trailed=trailed,
                stored_first=bool(lead) and inline is None,
            )
            got = dict(zip((id(c) for c in ok), res, strict=True))
            res = [got.get(id(c)) for c in completions]
            report = CompletionReport()
            ended: list[tuple[str, TaskStatus, list[str]]] = []
            for tid, rec in (again or {}).items():
                report.done.append(tid)
                if rec.dependents:
                    ended.append((tid, rec.task.status, rec.dependents))
            for c, r in zip(completions, res, strict=True):
                if r is None:
                    report.stale.append(c.task_id)
                else:
                    report.done.append(c.task_id)
                    if r[1].dependents:
                        ended.append((c.task_id, r[1].task.status, r[1].dependents))
            if ended:
                self._crash("resolve")  # the dependents' own guards re-check them
            await self._resolve(ended, dependency_policy, report)
            if own is not None and report.cancelled:
                await self._copy_results([], report)
            return report

        return await run()

    async def _back(self, refs: Sequence[tuple[str, str, Callable[[Rec], Rec]]]) -> list[str]:
        items = [
            (tid, self._leased(token, change), self._leases.pop((tid, token), None))
            for tid, token, change in refs
        ]

        async def run() -> list[str]:
            res = await self._change_many(items)
            self._crash("back")  # the claim's lease timer re-announces (_settle)
            await self._ready_many([(r[1], r[2]) for r in res if r is not None])
            return [ref[0] for ref, r in zip(refs, res, strict=True) if r is None]

        return await self._call(run)

    async def retry(self, requests: Sequence[RetryRequest]) -> list[str]:
        return await self._back(
            [(r.task_id, r.token, functools.partial(_retried, eta=r.eta)) for r in requests]
        )

    async def defer(self, requests: Sequence[RetryRequest]) -> list[str]:
        return await self._back(
            [
                (
                    r.task_id,
                    r.token,
                    functools.partial(_deferred, eta=r.eta),
                )
                for r in requests
            ]
        )

    async def release(self, leases: Sequence[LeaseRef]) -> list[str]:
        return await self._back(
            [
                (
                    r.task_id,
                    r.token,
                    lambda rec: pending(rec, max(0, rec.task.attempt - 1), rec.task.eta),
                )
                for r in leases
            ]
        )

    async def cancel(
        self, task_ids: Sequence[str], *, dependency_policy: DependencyPolicy = "cancel"
    ) -> CompletionReport:
        return await self._cancel(task_ids, dependency_policy, None)

    async def cancel_with_results(
        self,
        task_ids: Sequence[str],
        record: ResultRecord,
        *,
        dependency_policy: DependencyPolicy = "cancel",
    ) -> CompletionReport:
        """Each record write that cancels a task also holds its result (``Rec.result``)
        when the results live in this NATS: the result exists as soon as the state does."""
        if record.result_store is not self.results:
            return await super().cancel_with_results(
                task_ids, record, dependency_policy=dependency_policy
            )
        return await self._cancel(task_ids, dependency_policy, record)

    async def _cancel(
        self, task_ids: Sequence[str], dependency_policy: DependencyPolicy, own: ResultRecord | None
    ) -> CompletionReport:
        t = now()

        def fn(rec: Rec) -> Rec | None:
            if rec.task.status.is_terminal:
                return None
            return _ended(finished(rec, TaskStatus.CANCELLED, t), own)

        async def run() -> CompletionReport:
            res = await asyncio.gather(*(self._change(i, fn) for i in task_ids))
            report = CompletionReport()
            ended = []
            for tid, r in zip(task_ids, res, strict=True):
                if r is not None:
                    report.done.append(tid)
                    if r[1].dependents:
                        ended.append((tid, TaskStatus.CANCELLED, r[1].dependents))
            if own is not None and report.done:
                self._crash("ended")  # the records hold the results already
            await self._resolve(ended, dependency_policy, report)
            if own is not None:
                await self._copy_results([r[1] for r in res if r is not None], report)
            return report

        return await self._call(run)

    async def _copy_results(self, roots: Sequence[Rec], report: CompletionReport) -> None:
        """Copy the results the ended records hold (the call's own and its cascade's)
        into the result store, which wakes their waiters. Until then (a crash) the result
        store reads them from the records."""
        got = [r.result for r in roots]
        if report.cancelled:
            recs = await asyncio.gather(*(self._get(x.id) for x in report.cancelled))
            got += [rec.result for rec, _ in recs if rec is not None]
        results = [r for r in got if r is not None]
        if results and self.results is not None:
            await self.results.put(results)

    # -- sweeps --------------------------------------------------------------------

    async def reclaim_expired(self) -> list[str]:
        return await self._call(self._reclaim)

    async def _reclaim(self) -> list[str]:
        """Handle due lease timers (a claim's, or an enqueue's guard): expire leases
        still held by the timer's token, re-announce tasks found pending (a crash may
        have cut a write from its publish; duplicates are de-duplicated or dropped by
        the generation check), re-check blocked ones and re-arm their guard. The timer
        is acked only after all of that, so a crash here gets it redelivered."""
        be = self._be
        out: list[str] = []
        for m in await be.js.pull(be.work_stream, "timer-lease", 512):
            body: list[Any] = any_dec.decode(m.data)
            tok, until, ids = body[0], body[1], body[2]
            policy: DependencyPolicy = body[3] if len(body) > 3 else "cancel"
            t = now()
            if until > t:
                await m.nak(delay=until - t)
                continue
            later: list[float] = []
            announce: list[tuple[Rec, int]] = []
            blocked: list[str] = []
            res = await asyncio.gather(
                *(
                    self._settle(i, tok, t, later=later, announce=announce, blocked=blocked)
                    for i in ids
                )
            )
            out += [i for i, r in zip(ids, res, strict=True) if r]
            self._crash("reclaim")
            await self._ready_many(announce)
            if blocked:
                await be.js.publish_many([self._guard_msg(blocked, self.blocked_recheck, policy)])
                await self._resolve([("", TaskStatus.PENDING, blocked)], policy, CompletionReport())
            if later:
                await m.nak(delay=max(0.001, min(later) - now()))
            else:
                await m.ack()
        return out

    async def _settle(
        self,
        tid: str,
        tok: str,
        t: float,
        *,
        later: list[float],
        announce: list[tuple[Rec, int]],
        blocked: list[str],
    ) -> bool:
        """One task of a due lease timer; True when its lease was expired here."""
        rec, rev = await self._get(tid)
        while rec is not None:
            status = rec.task.status
            if rec.token == tok and status is TaskStatus.RUNNING:
                if rec.until is not None and rec.until > t:
                    later.append(rec.until)
                    return False
                new = lapsed(rec)
                new_rev = await self._cas(new, rev)
                if new_rev is None:
                    rec, rev = await self._get(tid)
                    continue
                announce.append((new, new_rev))
                return True
            if status is TaskStatus.PENDING:
                if rec.blocked:
                    blocked.append(tid)
                else:
                    announce.append((rec, rev))
            return False
        return False

    async def expire(self, *, dependency_policy: DependencyPolicy = "cancel") -> CompletionReport:
        return await self._call(lambda: self._expire(dependency_policy, None))

    async def expire_with_results(
        self, record: ResultRecord, *, dependency_policy: DependencyPolicy = "cancel"
    ) -> CompletionReport:
        """As ``cancel_with_results``: each expiring record write holds its result."""
        if record.result_store is not self.results:
            return await super().expire_with_results(record, dependency_policy=dependency_policy)
        return await self._call(lambda: self._expire(dependency_policy, record))

    async def _expire(self, policy: DependencyPolicy, own: ResultRecord | None) -> CompletionReport:
        be = self._be
        report = CompletionReport()
        ended: list[tuple[str, TaskStatus, list[str]]] = []
        roots: list[Rec] = []
        for m in await be.js.pull(be.work_stream, "timer-ttl", 512):
            entries: list[list[Any]] = any_dec.decode(m.data)
            t = now()
            later = [exp for _, exp in entries if exp > t]
            keep: list[float] = []

            def fn(rec: Rec, t: float = t, keep: list[float] = keep) -> Rec | None:
                st = rec.task.status
                if st is TaskStatus.RUNNING:
                    keep.append(t + 5.0)
                if st is not TaskStatus.PENDING or rec.task.expires_at is None:
                    return None
                if rec.task.expires_at > t:
                    keep.append(rec.task.expires_at)
                    return None
                return _ended(finished(rec, TaskStatus.EXPIRED, t), own)

            due = [i for i, exp in entries if exp <= t]
            res = await asyncio.gather(*(self._change(i, fn) for i in due))
            for i, r in zip(due, res, strict=True):
                if r is not None:
                    report.done.append(i)
                    roots.append(r[1])
                    if r[1].dependents:
                        ended.append((i, TaskStatus.EXPIRED, r[1].dependents))
            if own is not None and roots:
                self._crash("ended")  # the records hold the results already
            nxt = later + keep
            if nxt:
                await m.nak(delay=max(0.001, min(nxt) - now()))
            else:
                await m.ack()
        await self._resolve(ended, policy, report)
        if own is not None:
            await self._copy_results(roots, report)
        return report

    # -- reads ---------------------------------------------------------------------

    async def get(self, task_ids: Sequence[str]) -> list[Task | None]:
        async def one(task_id: str) -> Task | None:
            try:
                rec, _ = await self._get(task_id)
            except CorruptRec as exc:
                log.warning("skipping corrupt task record %s: %s", task_id, exc)
                return None
            return None if rec is None else rec.task

        return list(await self._call(lambda: asyncio.gather(*(one(i) for i in task_ids))))

    async def _scan(self) -> list[Rec]:
        be = self._be
        msgs = await be.js.scan(
            f"KV_{be.tasks_bucket}", f"$KV.{be.tasks_bucket}.>", last_per_subject=True
        )
        out = []
        for m in msgs:
            if m.data and not (m.headers and m.headers.get("KV-Operation")):
                key = m.subject.rsplit(".", 1)[-1]
                try:
                    out.append(decode_rec(key, m.data, 0))
                except CorruptRec as exc:
                    log.warning("skipping corrupt task record (key %s): %s", key, exc)
        return out

    async def _select(self, queue: str | None, status: TaskStatus | None) -> list[Rec]:
        recs: list[Rec] = await self._call(self._scan)
        return [
            r
            for r in recs
            if (queue is None or r.task.queue == queue)
            and (status is None or r.task.status is TaskStatus(status))
        ]

    async def list(
        self,
        *,
        queue: str | None = None,
        status: TaskStatus | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[Task]:
        found = sorted((r.task for r in await self._select(queue, status)), key=lambda t: t.id)
        return found[offset : offset + limit]

    async def count(self, *, queue: str | None = None, status: TaskStatus | None = None) -> int:
        return len(await self._select(queue, status))

    async def counts(self) -> dict[tuple[str, TaskStatus], int]:
        out: dict[tuple[str, TaskStatus], int] = {}
        for r in await self._select(None, None):
            k = (r.task.queue, r.task.status)
            out[k] = out.get(k, 0) + 1
        return out

    async def purge(self, *, finished_before: float, status: TaskStatus | None = None) -> int:
        floor = self._purge_floor
        if floor.skip(finished_before):
            return 0
        started = floor.start()
        doomed: builtins.list[str] = []
        left = math.inf
        for r in await self._select(None, None):
            if not r.task.status.is_terminal or r.finished is None:
                continue
            if r.finished < finished_before and (status is None or r.task.status is status):
                doomed.append(r.task.id)
            else:
                left = min(left, r.finished)
        be = self._be
        await self._call(
            lambda: asyncio.gather(*(be.js.kv_purge(be.tasks_bucket, token(i)) for i in doomed))
        )
        floor.scanned(started, left)
        return len(doomed)

    async def requeue(self, task_ids: Sequence[str]) -> builtins.list[str]:
        ids = list(dict.fromkeys(task_ids))

        def fn(rec: Rec) -> Rec | None:
            if rec.task.status is not TaskStatus.ERROR:
                return None
            return msgspec.structs.replace(pending(rec, 0, None), finished=None)

        async def run() -> list[str]:
            # A guard timer first (the finished task has no lease timer left): a crash
            # between a record's write and its work message is re-announced by the guard.
            await self._be.js.publish_many([self._guard_msg(ids, self.guard_delay, "cancel")])
            # Revision-checked write per record, then its work message.
            res = await asyncio.gather(*(self._change(i, fn) for i in ids))
            self._crash("requeue")  # the guard above re-announces the records
            await self._ready_many([(r[1], r[2]) for r in res if r is not None])
            return [i for i, r in zip(ids, res, strict=True) if r is not None]

        return await self._call(run)

    # -- paused queues ---------------------------------------------------------------

    async def pause_queue(self, queue: str) -> bool:
        return await self._call(lambda: change_paused(self._be, queue, True))

    async def resume_queue(self, queue: str) -> bool:
        be = self._be

        async def run() -> bool:
            done = await change_paused(be, queue, False)
            await be.js.nc.publish(resumed_subject(be), queue.encode())
            return done

        return await self._call(run)

    async def paused_queues(self) -> builtins.list[str]:
        paused, _ = await self._call(lambda: read_paused(self._be, leader=True))
        return sorted(paused)

    # -- waiting -------------------------------------------------------------------

    async def wait_for_work(self, queues: Sequence[str], timeout: float) -> bool:  # noqa: ASYNC109
        return await self._wait(queues, timeout, None)

    async def claim_limited(
        self, queues: Sequence[str], worker_id: str, *, limit: int = 1, lease: float = 30.0
    ) -> builtins.list[ClaimedTask]:
        """The claim for concurrency slots this worker just freed: from the work its
        claims held back by a cap (``_held``), else the usual claim."""
        if limit <= 0 or not queues:
            return []
        out = await self._call(lambda: claim_held(self, queues, worker_id, limit, lease))
        if out is None:
            return await self.claim(queues, worker_id, limit=limit, lease=lease)
        return out

    async def claim_standby(
        self, queues: Sequence[str], worker_id: str, *, behind: ClaimedTask, lease: float = 30.0
    ) -> ClaimedTask | None:
        """A task to run in the concurrency slot of ``behind`` (a running claim of this
        worker under a cap) once that run ended, claimed now so it starts without a
        round trip. While both claims are listed in the key's record they take one
        slot. The caller renews its lease until it runs it, and releases it when it
        will not. None when no held-back task of that key is remembered, or ``behind``
        has ended or has a standby already."""
        if not queues or not self._remembered(queues):
            return None
        return await self._call(lambda: claim_standby(self, queues, behind, worker_id, lease))

    async def finish_and_claim(
        self,
        completions: Sequence[Completion],
        results: Sequence[TaskResult],
        result_store: ResultStorage | None,
        *,
        lease: float,
        dependency_policy: DependencyPolicy = "cancel",
        record: ResultRecord | None = None,
        queues: Sequence[str],
        worker_id: str,
        limit: int,
    ) -> tuple[CompletionReport, builtins.list[ClaimedTask]] | None:
        """``finish``, and the claim for the concurrency slots it freed from the work
        this process's claims held back by a cap (``_held``): that claim's reads go
        alongside the finish, and its reservation hands the finished claims' slots on
        in one revision-checked write once the finish is stored. None, doing nothing,
        when no held-back work is remembered (the caller finishes and claims apart).
        A failing claim after a stored finish returns no claims, never the error."""
        if limit <= 0 or not queues or not completions or not self._remembered(queues):
            return None
        prep = asyncio.ensure_future(self._call(lambda: prepare(self, queues, limit)))
        planned: list[Plan] = []
        answers: list[int | None] = []

        async def trail(lost: set[str]) -> builtins.list[tuple[str, bytes, dict[str, str] | None]]:
            try:
                got = await prep
            except Exception:  # the finish goes on; the claim after it sees the error
                return []
            if got is None:
                return []
            ended = {
                (c.task_id, c.token)
                for c in completions
                if c.task_id not in lost and TaskStatus(c.status).is_terminal
            }
            planned.append(plan(self, got, limit, ended))
            return planned[0].puts

        try:
            report = await self._finish(
                completions,
                results,
                result_store,
                lease=lease,
                dependency_policy=dependency_policy,
                record=record,
                trail=trail,
                trailed=answers,
            )
        except BaseException:
            prep.cancel()
            with contextlib.suppress(BaseException):
                await prep
            if planned and any(a is not None for a in answers):
                # The transfer dropped the finished claims, but their completions may
                # not all be stored: list them again (their leases end them).
                gone = [(c.task_id, c.token) for c in completions]
                with contextlib.suppress(Exception):
                    for (key, _), answer in zip(planned[0].keys, answers, strict=False):
                        if answer is not None:
                            await relist(self._be, key, gone, planned[0].t)
            raise
        done = set(report.done)
        ended = {(c.task_id, c.token) for c in completions if c.task_id in done}
        claims: builtins.list[ClaimedTask] = []
        try:
            got = await prep
            if got is not None:
                claims = await self._call(
                    lambda: claim_prepared(
                        self,
                        got,
                        queues,
                        worker_id=worker_id,
                        limit=limit,
                        lease=lease,
                        ended=ended,
                        planned=planned[0] if planned and answers else None,
                        answers=answers,
                    )
                )
            else:
                claims = await self.claim(queues, worker_id, limit=limit, lease=lease)
        except Exception as exc:  # the outcomes are stored: never fail their report
            log.debug("claiming for freed slots failed: %s", exc)
        return report, claims

    async def limits_freed(self, queues: Sequence[str]) -> None:
        """Wake the workers pausing for held work on ``queues``: slots freed."""
        await self._call(lambda: limits_freed(self._be, queues))

    async def wait_for_limits(self, queues: Sequence[str], timeout: float) -> bool:  # noqa: ASYNC109
        """Until ``limits_freed`` names one of ``queues`` (True) or ``timeout`` passes."""
        return await self._call(lambda: wait_for_limits(self._be, queues, timeout))

    async def _claim_woken(
        self, woken: builtins.list[tuple[Work, Rec]], worker_id: str, limit: int, lease: float
    ) -> builtins.list[ClaimedTask]:
        return await claim_woken(self, woken, worker_id, limit, lease)

    async def wait_for_push(
        self,
        queues: Sequence[str],
        timeout: float,  # noqa: ASYNC109
        *,
        worker_id: str,
        lease: float,
        inbox: Callable[[builtins.list[ClaimedTask]], None],
    ) -> bool:
        """``wait_for_work`` that leases the tasks whose work messages woke it to
        ``worker_id`` right away (``_direct``) and hands them to ``inbox``."""
        return await self._wait(queues, timeout, (worker_id, lease, inbox))

    async def close_inbox(self, worker_id: str) -> builtins.list[str]:
        handed = self._handed.pop(worker_id, {})
        return await self._call(lambda: give_back(self, handed))

    async def _wait(
        self,
        queues: Sequence[str],
        timeout: float,  # noqa: ASYNC109
        push: tuple[str, float, Callable[[builtins.list[ClaimedTask]], None]] | None,
    ) -> bool:
        be = self._be
        key = object()  # this wait's own key: its subscriptions wake only it
        qkey = tuple(queues)
        self._woken.pop(qkey, None)
        names = frozenset(queues)
        got: list[tuple[Work, Rec] | None] = []
        """The work messages that reached this wait (None: one a claim cannot take
        straight away, ``_direct``)."""

        def cb(_: Msg) -> None:
            be.wake.notify((key,))

        def on_work(msg: Msg) -> None:
            if len(got) <= WOKEN_MAX:
                got.append(woken_work(msg.data, names))
            be.wake.notify((key,))

        async def woke(paused: frozenset[str]) -> None:
            # Only a wait that found no ready work at its start gets here: these
            # messages are all the work of its queues since.
            if not got or len(got) > WOKEN_MAX or None in got:
                return
            work = [wr for wr in got if wr is not None and wr[1].task.queue not in paused]
            if not work:
                return
            if push is None or any(wr[1].task.depends_on for wr in work):
                # A dependent may need its dependencies' results or outcome checked
                # before it runs: the worker's claim does that, a handover does not.
                self._woken[qkey] = work
                return
            worker_id, lease, inbox = push
            handed = self._handed.setdefault(worker_id, {})
            claims = await be.call(
                lambda: claim_woken(self, work, worker_id, len(work), lease, handed=handed)
            )
            if claims:
                inbox(claims)
                # The tasks just handed over start on the loop's next turn: let them
                # run before this wait's own clean-up and the caller's next steps.
                await asyncio.sleep(0)

        with be.wake.watch([key]) as woken:
            return await self._wait_for_work(queues, timeout, cb, on_work, woke=woke, woken=woken)

    async def _wait_for_work(
        self,
        queues: Sequence[str],
        timeout: float,  # noqa: ASYNC109
        cb: Callable[[Msg], None],
        on_work: Callable[[Msg], None],
        *,
        woke: Callable[[frozenset[str]], Awaitable[None]],
        woken: Watch,
    ) -> bool:
        """Wait; when woken (not when ready work was there at its start), ``woke`` runs
        with the queues paused at the start, before the subscriptions end."""
        be = self._be
        nc = be.js.nc
        subs = [await subscribe_direct(nc, f"{be.ns}.work.{token(q)}.*", on_work) for q in queues]
        subs.append(await subscribe_direct(nc, resumed_subject(be), cb))
        watcher: asyncio.Task[None] | None = None
        try:
            subjects, paused, _ = await be.call(self._probe)
            if self._candidates(subjects, [q for q in queues if q not in paused]):
                return True
            deadline = now() + timeout
            if subjects.get(f"{be.ns}.timer.eta"):
                await be.call(self.promote)

                async def watch() -> None:
                    ev = be.js.timer_event
                    while (left := deadline - now()) > 0.05:
                        ev.clear()
                        step = min(left, 5.0)
                        try:
                            await be.js.pull_timer(be.work_stream, "timer-eta", step)
                            async with asyncio.timeout(step + 0.5):
                                await ev.wait()
                        except TimeoutError:
                            pass
                        except Exception:
                            await asyncio.sleep(0.1)

                watcher = asyncio.create_task(watch())
            if not await woken.wait(max(0.0, deadline - now())):
                return False
            await woke(paused)
            return True
        finally:
            if watcher is not None:
                watcher.cancel()
            for s in subs:
                with contextlib.suppress(Exception):  # the connection may be gone already
                    await s.unsubscribe()


def _retried(rec: Rec, eta: float | None) -> Rec:
    return pending(rec, rec.task.attempt, eta)


def _seeded(rec: Rec, record: ResultRecord) -> Rec:
    """``rec``, a task a worker's failure just ended, holding a result that gives its
    cascade (``_records.cascaded``) the time and retention of ``record``. Its own result
    is the worker's, stored before (``finish``); the result store reads this one only
    if it never held one."""
    t = rec.finished
    if t is None:
        return rec
    task = rec.task
    seed = TaskResult(
        task_id=task.id,
        status=task.status,
        attempts=task.attempt,
        finished_at=t,
        expires_at=record.expires(t),
        queue=task.queue,
    )
    return _replace(rec, result=seed)


def _ended(rec: Rec, record: ResultRecord | None) -> Rec:
    """``rec``, just ended by cancel/expire, holding its result when there is a record."""
    if record is None or rec.finished is None:
        return rec
    return _replace(rec, result=record.result(rec.task, rec.task.status, rec.finished))


async def on_timer(be: Backend, ns: str, msg: Msg) -> None:
    """An eta timer answering a blocking pull: promote it when due (else nak it with a
    delay); anything else is handed back at once."""
    try:
        if msg.subject == f"{ns}.timer.eta" and isinstance(be.tasks, NatsTaskQueue):
            await be.tasks.promote([msg])
        else:
            await msg.nak()
    except Exception:
        pass


def _deferred(rec: Rec, *, eta: float | None) -> Rec:
    """Pending again not before ``eta``, the claim's attempt given back."""
    return pending(rec, max(0, rec.task.attempt - 1), eta)
