"""The task queue of the PostgreSQL backend (see ``_backend``).

``claim`` is one ``UPDATE ... FROM (SELECT ... FOR UPDATE SKIP LOCKED)`` statement that
also takes over lapsed leases; completion, cancellation and expiry resolve dependents
inside the same statement (PL/pgSQL functions of ``sql/migrations``).
"""

from __future__ import annotations

import builtins
import copy
import time
from collections.abc import Callable, Sequence
from typing import Any, cast

from omniq.models import ClaimedTask, LimitInfo, Task, TaskResult, TaskStatus, now
from omniq.storage._corrupt import CORRUPT_FUNC, Corrupt, quarantine, read_task, try_task
from omniq.storage._interfaces import (
    Completion,
    CompletionReport,
    DependencyPolicy,
    LeaseRef,
    ResultRecord,
    ResultStorage,
    RetryRequest,
    TaskQueueStorage,
    cascades,
)
from omniq.storage._remote import (
    HANDOVER_REGISTRATION,
    EngineStore,
    claimed,
    encode,
    with_state,
    with_state_eta,
)

from ._caller import CallerEngine, caller_connection
from ._control import PgTaskControl
from ._engine import PgEngine, push_key
from ._flow import LIMITS_FREED, SCAN, limit_args, limit_infos
from ._sql import QUERIES as _Q
from ._unique import enqueue_keyed

__all__ = ["PgTaskQueue"]

HANDOVER = 5.0
"""Longest lease of a handed-over task (seconds): the worker renews it on receipt, and a
worker that died before it did lets it lapse soon."""


def _read(r: Any, pre: str = "", queue: str | None = None, *, always: bool = False) -> Task | None:
    """A task from a row (id, queue, status, attempt, eta, envelope, named with prefix
    ``pre``); a corrupt envelope reads as a stand-in or None (``_corrupt.read_task``)."""
    status, attempt = r[pre + "status"], r[pre + "attempt"]
    tid = r["o_id"] if pre else r["id"]
    q = queue if pre else r["queue"]
    task = read_task(r[pre + "envelope"], tid, q, status, attempt, always=always)
    if task is None or task.func == CORRUPT_FUNC:
        return task
    return with_state_eta(task, status, attempt, r[pre + "eta"])


def _cancelled(r: Any) -> Task:
    """A dependent a completion cancelled (a stand-in if its envelope is corrupt)."""
    task = read_task(r["envelope"], r["id"], r["queue"], TaskStatus.CANCELLED, r["attempt"])
    assert task is not None  # cancelled is terminal: never skipped
    return with_state(task, TaskStatus.CANCELLED, r["attempt"])


def _ended(r: Any, status: TaskStatus) -> Task:
    """A task a cancel/expiry just ended, for its result (a stand-in if its envelope is
    corrupt: the result still names its id and queue)."""
    task = read_task(r["envelope"], r["id"], r["queue"], status, r["attempt"], always=True)
    assert task is not None  # always=True: a stand-in, never None
    return with_state(task, status, r["attempt"])


PURGE_BATCH = 5000
"""Tasks ``purge`` deletes per statement (each its own transaction)."""
LAPSED_EVERY = 0.5
"""Seconds between two claims that also take over lapsed leases (the others lease
ready tasks only; ``reclaim_expired`` returns lapsed ones to pending meanwhile)."""


def _born_results(
    tasks: Sequence[Task], record: ResultRecord, t: float
) -> tuple[builtins.list[str], builtins.list[float | None], builtins.list[bytes]] | None:
    """The ``cancelled`` results (ids, expiries, envelopes) the batch's dependents get if
    the enqueue stores them already cancelled (a dependency had already failed); None
    when no task of the batch could be."""
    firsts: dict[str, Task] = {}
    for task in tasks:
        if task.depends_on and task.run_if is None:
            firsts.setdefault(task.id, task)
    if not firsts:
        return None
    results = [
        record.result(
            with_state(x, TaskStatus.CANCELLED, 0), TaskStatus.CANCELLED, t, cascaded=True
        )
        for x in firsts.values()
    ]
    return (
        [r.task_id for r in results],
        [r.expires_at for r in results],
        [encode(r) for r in results],
    )


class PgTaskQueue(PgTaskControl, EngineStore[PgEngine], TaskQueueStorage):
    """Task rows; claim/complete/cancel/expire are single statements."""

    results: ResultStorage | None = None
    """Where a quarantined record's result goes (the backend's own result store)."""
    _lapsed_at = 0.0

    def __init__(self, engine: PgEngine) -> None:
        super().__init__(engine)
        self._handing: set[str] = set()
        """Queues whose last single enqueue found a worker waiting idle: their next one
        goes straight to ``enqueue_one`` (the handover); the others first try
        ``enqueue_lean``, which stores the task unless a worker waits."""

    async def enqueue(
        self,
        tasks: Sequence[Task],
        *,
        dependency_policy: DependencyPolicy = "cancel",
        record: ResultRecord | None = None,
    ) -> builtins.list[Task]:
        """``enqueue``; with ``record`` (``enqueue_with_results``), a task stored already
        cancelled gets its result in the same statement when ``record.result_store`` is
        this backend's, else right after it."""
        if not tasks:
            return []
        self.payload_limit.check_tasks(tasks)
        own = record if record is not None and record.result_store is self.results else None
        if any(t.key is not None for t in tasks):
            out = await enqueue_keyed(
                self,
                tasks,
                dependency_policy,
                lambda s, ts, p: s._enqueue_rows(ts, p, own),
            )
        else:
            out = await self._enqueue_rows(tasks, dependency_policy, own)
        if record is not None and own is None:
            await self.record_born_cancelled(tasks, out, record)
        return out

    async def enqueue_with_results(
        self,
        tasks: Sequence[Task],
        record: ResultRecord,
        *,
        dependency_policy: DependencyPolicy = "cancel",
    ) -> builtins.list[Task]:
        return await self.enqueue(tasks, dependency_policy=dependency_policy, record=record)

    async def _enqueue_rows(
        self,
        tasks: Sequence[Task],
        dependency_policy: DependencyPolicy,
        record: ResultRecord | None = None,
    ) -> builtins.list[Task]:
        limits = limit_args(tasks)
        if limits is not None:
            return await self._enqueue_full(tasks, dependency_policy, limits, record)
        if not any(t.depends_on for t in tasks):
            return await self._enqueue_plain(tasks, dependency_policy)
        return await self._enqueue_full(tasks, dependency_policy, record=record)

    async def enqueue_in_transaction(
        self,
        connection: object,
        tasks: Sequence[Task],
        *,
        dependency_policy: DependencyPolicy = "cancel",
        record: ResultRecord | None = None,
    ) -> builtins.list[Task]:
        """``enqueue``'s own statements, run on the caller's asyncpg or psycopg 3
        connection inside its transaction (``_caller``)."""
        bound = copy.copy(self)
        bound._be = cast(PgEngine, CallerEngine(self._be, caller_connection(connection)))
        return await bound.enqueue(tasks, dependency_policy=dependency_policy, record=record)

    async def _enqueue_plain(
        self, tasks: Sequence[Task], dependency_policy: DependencyPolicy
    ) -> builtins.list[Task]:
        """No dependencies: one INSERT ... ON CONFLICT DO NOTHING; the (rare) rows that
        collided with a stored id or live key go through ``omniq_enqueue``."""
        if len(tasks) == 1:
            t = tasks[0]
            one = (t.id, t.queue, t.priority, t.eta, t.expires_at, t.key, encode(t))
            chan = self._be.work_channel
            t0 = now()
            handing = self._handing
            if t.queue not in handing:
                lean = _Q["enqueue_lean"]
                row = await self._call(lambda c: c.fetchrow(lean, *one, chan, t0))
                if not row["idle"]:
                    if row["stored"]:
                        return [with_state(t, TaskStatus.PENDING, 0)]
                    return await self._enqueue_full(tasks, dependency_policy)
                handing.add(t.queue)
            stmt = _Q["enqueue_one"]
            got = await self._call(lambda c: c.fetchrow(stmt, *one, chan, t0, HANDOVER))
            if got is None:
                return await self._enqueue_full(tasks, dependency_policy)
            if not got["handed"]:
                handing.discard(t.queue)
            return [with_state(t, TaskStatus.PENDING, 0)]
        args = (
            [t.id for t in tasks],
            [t.queue for t in tasks],
            [t.priority for t in tasks],
            [t.eta for t in tasks],
            [t.expires_at for t in tasks],
            [t.key for t in tasks],
            [encode(t) for t in tasks],
            self._be.work_channel,
        )
        rows = await self._call(lambda c: c.fetch(_Q["enqueue_plain"], *args))
        inserted = {r[0] for r in rows}
        if len(inserted) == len(tasks):
            return [with_state(t, TaskStatus.PENDING, 0) for t in tasks]
        # An id repeated in the batch was inserted once; its later copies are not new.
        seen: set[str] = set()
        new: set[int] = set()
        for i, t in enumerate(tasks):
            if t.id in inserted and t.id not in seen:
                new.add(i)
            seen.add(t.id)
        rest = [t for i, t in enumerate(tasks) if i not in new]
        stored = iter(await self._enqueue_full(rest, dependency_policy))
        return [
            with_state(t, TaskStatus.PENDING, 0) if i in new else next(stored)
            for i, t in enumerate(tasks)
        ]

    async def _enqueue_full(
        self,
        tasks: Sequence[Task],
        dependency_policy: DependencyPolicy,
        limits: tuple[builtins.list[Any], ...] | None = None,
        record: ResultRecord | None = None,
    ) -> builtins.list[Task]:
        """Enqueue row by row; with ``record`` (this backend's result store), the
        statement also stores the ``cancelled`` result of each task it stores already
        cancelled (built here for the batch's dependents; the rows pick theirs)."""
        dep_idx: builtins.list[int] = []
        dep_on: builtins.list[str] = []
        for i, t in enumerate(tasks, 1):
            for d in dict.fromkeys(t.depends_on):  # a dependency listed twice is one edge
                dep_idx.append(i)
                dep_on.append(d)
        args = (
            [t.id for t in tasks],
            [t.queue for t in tasks],
            [t.priority for t in tasks],
            [t.eta for t in tasks],
            [t.expires_at for t in tasks],
            [t.key for t in tasks],
            [encode(t) for t in tasks],
            dep_idx,
            dep_on,
            dependency_policy,
            now(),
            self._be.work_channel,
        )
        sql = _Q["enqueue_full"]
        extra: tuple[Any, ...] = ()
        cond = any(t.run_if is not None for t in tasks)  # conditional dependents
        if cond:
            sql = _Q["enqueue_cond"]
            extra = ([t.run_if is not None and bool(t.depends_on) for t in tasks],)
        if record is not None and dependency_policy == "cancel":
            born = _born_results(tasks, record, args[10])
            if born:
                sql = _Q["enqueue_cond_recorded" if cond else "enqueue_full_recorded"]
                extra = (self._be.result_channel, *born, *extra)
        if limits is None:
            rows = await self._call(lambda c: c.fetch(sql, *args, *extra))
        else:  # flow-limited tasks: stored and marked limited in one transaction

            async def run(c: Any) -> Any:
                async with c.transaction():
                    got = await c.fetch(sql, *args, *extra)
                    old = {t.id for t, r in zip(tasks, got, strict=True) if r["o_existing"]}
                    keep = [i for i, tid in enumerate(limits[0]) if tid not in old]
                    await c.execute(_Q["set_limits"], *([col[i] for i in keep] for col in limits))
                    return got

            rows = await self._call(run)
        out: builtins.list[Task] = []
        for t, r in zip(tasks, rows, strict=True):
            if r["o_existing"]:
                stored = _read(r, "o_", t.queue, always=True)
                assert stored is not None  # always=True: a stand-in, never None
                out.append(stored)
            else:
                out.append(with_state(t, r["o_status"], 0))
        return out

    async def claim(
        self, queues: Sequence[str], worker_id: str, *, limit: int = 1, lease: float = 30.0
    ) -> builtins.list[ClaimedTask]:
        if limit <= 0 or not queues:
            return []
        t = now()
        until = t + lease
        qs = builtins.list(queues)
        stmt = _Q["claim_one"] if len(qs) == 1 else _Q["claim_any"]
        lapsed = t >= self._lapsed_at
        if lapsed:
            self._lapsed_at = t + LAPSED_EVERY
        rows = await self._call(lambda c: c.fetch(stmt, qs, t, limit, worker_id, until, lapsed))
        self.limited = []
        if rows and rows[-1]["limited"]:
            # Short, and limited tasks may be claimable: the only case that pays a
            # second round trip (a queue without limited tasks never does).
            rows = rows[:-1]
            rows.extend(await self._limited_rows(qs, t, limit - len(rows), worker_id, until))
        return await self._claimed(rows, until, worker_id, lease)

    async def claim_limited(
        self, queues: Sequence[str], worker_id: str, *, limit: int = 1, lease: float = 30.0
    ) -> builtins.list[ClaimedTask]:
        """Claim flow-limited tasks only, within their limits, in one round trip: what a
        worker that just freed concurrency slots asks for (its plain claims take the
        rest)."""
        self.limited = []
        if limit <= 0 or not queues:
            return []
        t = now()
        until = t + lease
        rows = await self._limited_rows(builtins.list(queues), t, limit, worker_id, until)
        return await self._claimed(rows, until, worker_id, lease)

    async def claim_standby(
        self, queues: Sequence[str], worker_id: str, *, behind: ClaimedTask, lease: float = 30.0
    ) -> ClaimedTask | None:
        """A task to run in the concurrency slot of ``behind`` (a running claim of this
        worker under a cap without a rate) once that run ended, claimed now so it
        starts without a round trip: the key's next ready task, its row running with
        ``standby_of`` naming ``behind``'s claim, so while both run in the store they
        take one slot. The caller renews its lease until it runs it, and releases it
        when it will not. None when no task of that key is ready, or ``behind`` has
        ended or has a standby already."""
        if not queues:
            return None
        t = now()
        until = t + lease
        qs = builtins.list(queues)
        rows = await self._call(
            lambda c: c.fetch(
                _Q["claim_standby"], qs, t, behind.task.id, behind.token, worker_id, until
            )
        )
        got = await self._claimed(
            [{k[2:]: v for k, v in r.items()} for r in rows], until, worker_id, lease
        )
        return got[0] if got else None

    async def _limited_rows(
        self, qs: builtins.list[str], t: float, n: int, worker_id: str, until: float
    ) -> builtins.list[Any]:
        """``claim_limited``'s claimed rows; sets ``limited`` and ``limited_wait``."""
        more = await self._call(
            lambda c: c.fetch(_Q["claim_limited"], qs, t, n, worker_id, until, SCAN)
        )
        return self._limited_result(more)

    def _limited_result(self, more: builtins.list[Any]) -> builtins.list[Any]:
        """The claimed rows of ``claim_limited``'s reply; sets ``limited`` and
        ``limited_wait`` from its held keys."""
        held = [r for r in more if r["o_id"] is None]
        self.limited = [r["o_key"] for r in held]
        waits = [r["o_eta"] for r in held]
        self.limited_wait = min(waits) if waits and None not in waits else None
        return [{k[2:]: v for k, v in r.items()} for r in more if r["o_id"]]

    async def _claimed(
        self, rows: builtins.list[Any], until: float, worker_id: str, lease: float
    ) -> builtins.list[ClaimedTask]:
        rows = sorted(rows, key=lambda r: (-r["priority"], r["id"]))
        out: builtins.list[ClaimedTask] = []
        bad: builtins.list[Corrupt] = []
        for r in rows:
            got = try_task(r["envelope"])
            if isinstance(got, Task):
                task = with_state_eta(got, TaskStatus.RUNNING, r["attempt"], r["eta"])
                out.append(claimed(task, r["token"], until, worker_id))
            else:
                bad.append(Corrupt(r["id"], r["token"], str(got), r["attempt"], r["queue"]))
        await quarantine(self, self.results, bad, lease=lease)
        return out

    limited: builtins.list[str] = []
    """The limit keys the last claim held tasks back for."""
    limited_wait: float | None = None
    """Seconds until the first rate-held key of the last claim has budget again (None:
    a key was held back by its cap, or none by its rate)."""

    async def limits_freed(self, queues: Sequence[str]) -> None:
        """Tell the workers pausing for held work on ``queues`` that concurrency slots
        freed (a NOTIFY on the work channel)."""
        chan = self._be.work_channel
        names = [f"{LIMITS_FREED}{q}" for q in dict.fromkeys(queues)]
        await self._call(lambda c: c.execute(_Q["notify_many"], chan, names))

    async def wait_for_limits(self, queues: Sequence[str], timeout: float) -> bool:  # noqa: ASYNC109
        """Until ``limits_freed`` names one of ``queues`` (True) or ``timeout`` passes."""
        await self._be.listen_work()
        with self._be.work_wake.watch([f"{LIMITS_FREED}{q}" for q in queues]) as watch:
            return await watch.wait(timeout)

    async def list_limits(self) -> builtins.list[LimitInfo]:
        t = now()
        return await self._call(lambda c: limit_infos(c, t))

    async def renew(self, leases: Sequence[LeaseRef], lease: float) -> builtins.list[str]:
        if not leases:
            return []
        ids = [x.task_id for x in leases]
        toks = [x.token for x in leases]
        until = now() + lease
        rows = await self._call(lambda c: c.fetch(_Q["renew"], ids, toks, until))
        kept = {r["id"] for r in rows}
        return [i for i in ids if i not in kept]

    async def _report(self, row: Any, input_ids: Sequence[str] | None) -> CompletionReport:
        done = builtins.list(row["done"])
        cancelled_ids = builtins.list(row["cancelled"])
        cancelled: builtins.list[Task] = []
        if cancelled_ids:
            rows = await self._call(
                lambda c: c.fetch(
                    _Q["tasks_for_report"],
                    cancelled_ids,
                )
            )
            by_id = {r["id"]: r for r in rows}
            cancelled = [_cancelled(by_id[i]) for i in cancelled_ids if i in by_id]
        stale: builtins.list[str] = []
        if input_ids is not None:
            dset = set(done)
            done = [i for i in input_ids if i in dset]
            stale = [i for i in input_ids if i not in dset]
        return CompletionReport(
            done=done, stale=stale, released=builtins.list(row["released"]), cancelled=cancelled
        )

    async def complete(
        self, completions: Sequence[Completion], *, dependency_policy: DependencyPolicy = "cancel"
    ) -> CompletionReport:
        if not completions:
            return CompletionReport()
        ids = [c.task_id for c in completions]
        toks = [c.token for c in completions]
        sts = [TaskStatus(c.status).value for c in completions]
        chan = self._be.work_channel
        row = await self._call(
            lambda c: c.fetchrow(
                _Q["complete"],
                ids,
                toks,
                sts,
                dependency_policy,
                now(),
                chan,
            )
        )
        return await self._report(row, ids)

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
        """Results and completions in one statement when the results live in this
        backend: the lease check of the completion fences both, atomically. A batch
        whose failures may cancel dependents with a ``record`` takes the default path,
        whose ``complete_with_results`` stores the cascade's results in the
        completion's transaction."""
        if result_store is not None:
            result_store.payload_limit.check_results(results)
        by_id = {r.task_id: r for r in results}
        if (
            result_store is not self.results
            or not results
            or len(by_id) != len(results)
            or not by_id.keys() <= {c.task_id for c in completions}
            or (record is not None and cascades(completions, dependency_policy))
        ):
            return await super().finish(
                completions,
                results,
                result_store,
                lease=lease,
                dependency_policy=dependency_policy,
                record=record,
            )
        ids = [c.task_id for c in completions]
        args = (
            ids,
            [c.token for c in completions],
            [TaskStatus(c.status).value for c in completions],
            dependency_policy,
            now(),
            self._be.work_channel,
            [r.task_id for r in results],
            [TaskStatus(r.status).value for r in results],
            [r.expires_at for r in results],
            [encode(r) for r in results],
            self._be.result_channel,
        )
        row = await self._call(lambda c: c.fetchrow(_Q["finish"], *args))
        return await self._report(row, ids)

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
        """``finish`` and then ``claim_limited`` for the concurrency slots it freed, in
        one call (one round trip and one commit to wait for instead of two): what a
        worker ending capped tasks does. None, doing nothing, when the batch does not take
        ``finish``'s one-statement path (the caller then finishes and claims apart)."""
        by_id = {r.task_id: r for r in results}
        if (
            limit <= 0
            or not queues
            or not completions
            or result_store is None
            or result_store is not self.results
            or not results
            or len(by_id) != len(results)
            or not by_id.keys() <= {c.task_id for c in completions}
            or (record is not None and cascades(completions, dependency_policy))
        ):
            return None
        result_store.payload_limit.check_results(results)
        ids = [c.task_id for c in completions]
        t = now()
        args = (
            ids,
            [c.token for c in completions],
            [TaskStatus(c.status).value for c in completions],
            dependency_policy,
            t,
            self._be.work_channel,
            [r.task_id for r in results],
            [TaskStatus(r.status).value for r in results],
            [r.expires_at for r in results],
            [encode(r) for r in results],
            self._be.result_channel,
        )
        until = t + lease
        claim = (builtins.list(queues), limit, worker_id, until, SCAN)
        got = await self._call(lambda c: c.fetch(_Q["finish_claim"], *args, *claim))
        head = got[0]
        row = {k: head[f"f_{k}"] for k in ("done", "released", "cancelled")}
        report = await self._report(row, ids)
        self.limited = []
        rows = self._limited_result(got[1:])
        return report, await self._claimed(rows, until, worker_id, lease)

    async def complete_with_results(
        self,
        completions: Sequence[Completion],
        record: ResultRecord,
        *,
        dependency_policy: DependencyPolicy = "cancel",
    ) -> CompletionReport:
        """The completion and its cascade's results in one transaction when they live in
        this database."""
        if record.result_store is not self.results:
            return await super().complete_with_results(
                completions, record, dependency_policy=dependency_policy
            )
        if not completions:
            return CompletionReport()
        ids = [c.task_id for c in completions]
        toks = [c.token for c in completions]
        sts = [TaskStatus(c.status).value for c in completions]
        t = now()
        args = (ids, toks, sts, dependency_policy, t, self._be.work_channel)
        report = await self._end_recorded(
            _Q["complete"], args, record, TaskStatus.CANCELLED, t, roots=False
        )
        dset = set(report.done)
        report.done = [i for i in ids if i in dset]
        report.stale = [i for i in ids if i not in dset]
        return report

    async def _requeue(
        self,
        ids: builtins.list[str],
        toks: builtins.list[str],
        etas: builtins.list[float | None],
        giveback: bool,
    ) -> builtins.list[str]:
        chan = self._be.work_channel
        rows = await self._call(
            lambda c: c.fetch(_Q["requeue_leased"], ids, toks, etas, giveback, chan)
        )
        ok = {r[0] for r in rows}
        return [i for i in ids if i not in ok]

    async def retry(self, requests: Sequence[RetryRequest]) -> builtins.list[str]:
        if not requests:
            return []
        return await self._requeue(
            [r.task_id for r in requests],
            [r.token for r in requests],
            [r.eta for r in requests],
            False,
        )

    async def defer(self, requests: Sequence[RetryRequest]) -> builtins.list[str]:
        if not requests:
            return []
        return await self._requeue(
            [r.task_id for r in requests],
            [r.token for r in requests],
            [r.eta for r in requests],
            True,
        )

    async def release(self, leases: Sequence[LeaseRef]) -> builtins.list[str]:
        if not leases:
            return []
        return await self._requeue(
            [x.task_id for x in leases], [x.token for x in leases], [None] * len(leases), True
        )

    async def cancel(
        self, task_ids: Sequence[str], *, dependency_policy: DependencyPolicy = "cancel"
    ) -> CompletionReport:
        if not task_ids:
            return CompletionReport()
        ids = builtins.list(task_ids)
        chan = self._be.work_channel
        row = await self._call(
            lambda c: c.fetchrow(_Q["cancel"], ids, dependency_policy, now(), chan)
        )
        report = await self._report(row, None)
        dset = set(report.done)
        report.done = [i for i in ids if i in dset]
        return report

    async def cancel_with_results(
        self,
        task_ids: Sequence[str],
        record: ResultRecord,
        *,
        dependency_policy: DependencyPolicy = "cancel",
    ) -> CompletionReport:
        """The cancel and its results in one transaction when they live in this database."""
        if record.result_store is not self.results:
            return await super().cancel_with_results(
                task_ids, record, dependency_policy=dependency_policy
            )
        if not task_ids:
            return CompletionReport()
        ids = builtins.list(task_ids)
        t = now()
        args = (ids, dependency_policy, t, self._be.work_channel)
        report = await self._end_recorded(_Q["cancel"], args, record, TaskStatus.CANCELLED, t)
        dset = set(report.done)
        report.done = [i for i in ids if i in dset]
        return report

    async def expire_with_results(
        self, record: ResultRecord, *, dependency_policy: DependencyPolicy = "cancel"
    ) -> CompletionReport:
        """The expiry and its results in one transaction when they live in this database."""
        if record.result_store is not self.results:
            return await super().expire_with_results(record, dependency_policy=dependency_policy)
        t = now()
        args = (dependency_policy, t, self._be.work_channel)
        return await self._end_recorded(_Q["expire"], args, record, TaskStatus.EXPIRED, t)

    async def _end_recorded(
        self,
        sql: str,
        args: tuple[Any, ...],
        record: ResultRecord,
        status: TaskStatus,
        t: float,
        *,
        roots: bool = True,
    ) -> CompletionReport:
        """Run ``sql`` (the cancel, expiry or completion statement) and store the results
        of every task it ended (its own, unless ``roots`` is False: a completion's are
        the worker's, and the dependents it cancelled) in one transaction; the result
        channel's NOTIFY goes out with the commit."""
        rchan = self._be.result_channel

        async def run(c: Any) -> tuple[Any, builtins.list[Any]]:
            async with c.transaction():
                row = await c.fetchrow(sql, *args)
                own = row["done"] if roots else ()
                ids = builtins.list(dict.fromkeys([*own, *row["cancelled"]]))
                if not ids:
                    return row, []
                rows = await c.fetch(_Q["tasks_for_report"], ids)
                mine = set(own)
                results = []
                for r in rows:
                    root = r["id"] in mine
                    st = status if root else TaskStatus.CANCELLED
                    results.append(record.result(_ended(r, st), st, t, cascaded=not root))
                await c.fetchval(
                    _Q["result_put"],
                    [x.task_id for x in results],
                    [TaskStatus(x.status).value for x in results],
                    [x.expires_at for x in results],
                    [encode(x) for x in results],
                    rchan,
                )
                return row, rows

        row, rows = await self._call(run)
        by_id = {r["id"]: r for r in rows}
        return CompletionReport(
            done=builtins.list(row["done"]),
            released=builtins.list(row["released"]),
            cancelled=[_cancelled(by_id[i]) for i in row["cancelled"] if i in by_id],
        )

    async def reclaim_expired(self) -> builtins.list[str]:
        chan = self._be.work_channel
        rows = await self._call(lambda c: c.fetch(_Q["reclaim"], now(), chan))
        return sorted(r[0] for r in rows)

    unique_prune_every = 10.0
    """Seconds between two prunes of ended ``task_unique`` windows by ``maintain`` (per
    process; the first call prunes)."""
    _unique_prune_at = 0.0

    async def maintain(self) -> None:
        self._be.vacuumer.poke()
        t = time.monotonic()
        if t >= self._unique_prune_at:
            self._unique_prune_at = t + self.unique_prune_every
            await self._call(lambda c: c.execute(_Q["unique_prune"], now(), PURGE_BATCH))

    async def expire(self, *, dependency_policy: DependencyPolicy = "cancel") -> CompletionReport:
        chan = self._be.work_channel
        row = await self._call(lambda c: c.fetchrow(_Q["expire"], dependency_policy, now(), chan))
        return await self._report(row, None)

    async def get(self, task_ids: Sequence[str]) -> builtins.list[Task | None]:
        if not task_ids:
            return []
        ids = builtins.list(task_ids)
        rows = await self._call(
            lambda c: c.fetch(
                _Q["tasks_get"],
                ids,
            )
        )
        by_id = {r["id"]: _read(r) for r in rows}
        return [by_id.get(i) for i in ids]

    @staticmethod
    def _where(queue: str | None, status: TaskStatus | None) -> tuple[str, builtins.list[Any]]:
        conds: builtins.list[str] = []
        args: builtins.list[Any] = []
        if queue is not None:
            args.append(queue)
            conds.append(f"queue = ${len(args)}")
        if status is not None:
            args.append(TaskStatus(status).value)
            conds.append(f"status = ${len(args)}")
        return (" WHERE " + " AND ".join(conds)) if conds else "", args

    async def list(
        self,
        *,
        queue: str | None = None,
        status: TaskStatus | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> builtins.list[Task]:
        where, args = self._where(queue, status)
        q = (
            f"SELECT id, queue, status, attempt, eta, envelope FROM tasks{where} ORDER BY id "
            f"LIMIT ${len(args) + 1} OFFSET ${len(args) + 2}"
        )
        rows = await self._call(lambda c: c.fetch(q, *args, limit, offset))
        return [t for t in map(_read, rows) if t is not None]

    async def list_page(
        self,
        *,
        queue: str | None = None,
        status: TaskStatus | None = None,
        after: str | None = None,
        before: str | None = None,
        limit: int = 100,
    ) -> builtins.list[Task]:
        where, args = self._where(queue, status)
        for op, bound in ((">", after), ("<", before)):
            if bound is not None:
                args.append(bound)
                where += f"{' AND' if where else ' WHERE'} id {op} ${len(args)}"
        q = (
            f"SELECT id, queue, status, attempt, eta, envelope FROM tasks{where} "
            f"ORDER BY id DESC LIMIT ${len(args) + 1}"
        )
        rows = await self._call(lambda c: c.fetch(q, *args, max(limit, 0)))
        return [t for t in map(_read, rows) if t is not None]

    async def count(self, *, queue: str | None = None, status: TaskStatus | None = None) -> int:
        where, args = self._where(queue, status)
        return int(
            await self._call(lambda c: c.fetchval(f"SELECT count(*) FROM tasks{where}", *args))
        )

    async def counts(self) -> dict[tuple[str, TaskStatus], int]:
        rows = await self._call(lambda c: c.fetch(_Q["tasks_counts"]))
        return {(r["queue"], TaskStatus(r["status"])): int(r["n"]) for r in rows}

    async def purge(self, *, finished_before: float, status: TaskStatus | None = None) -> int:
        only = None if status is None else TaskStatus(status).value

        async def run(c: Any) -> int:
            async with c.transaction():
                n = await c.fetchval(_Q["tasks_purge"], finished_before, only, PURGE_BATCH)
            return int(n)

        # Small transactions: a large backlog never holds thousands of row locks or
        # one long transaction (which would also hold back vacuuming).
        total = 0
        while True:
            n = await self._call(run)
            total += n
            if n < PURGE_BATCH:
                return total

    async def requeue(self, task_ids: Sequence[str]) -> builtins.list[str]:
        ids = builtins.list(dict.fromkeys(task_ids))
        if not ids:
            return []
        chan = self._be.work_channel

        async def run(c: Any) -> builtins.list[str]:
            rows = await c.fetch(_Q["tasks_requeue_errors"], ids, chan)
            return [r[0] for r in rows]

        done = set(await self._call(run))
        return [i for i in ids if i in done]

    async def pause_queue(self, queue: str) -> bool:
        t = now()

        async def run(c: Any) -> bool:
            async with c.transaction():
                await c.execute(_Q["queue_lock"])
                return await c.fetchval(_Q["queue_pause"], queue, t) is not None

        return await self._call(run)

    async def resume_queue(self, queue: str) -> bool:
        chan = self._be.work_channel
        rows = await self._call(lambda c: c.fetch(_Q["queue_resume"], queue, chan))
        return bool(rows)

    async def paused_queues(self) -> builtins.list[str]:
        rows = await self._call(lambda c: c.fetch(_Q["queues_paused"]))
        return [r[0] for r in rows]

    async def wait_for_work(self, queues: Sequence[str], timeout: float) -> bool:  # noqa: ASYNC109
        return await self._wait(queues, timeout, None)

    async def wait_for_push(
        self,
        queues: Sequence[str],
        timeout: float,  # noqa: ASYNC109
        *,
        worker_id: str,
        lease: float,
        inbox: Callable[[builtins.list[ClaimedTask]], None],
    ) -> bool:
        """Registers the worker as idle on ``queues`` (a row per queue in the unlogged
        ``idle_workers``, valid at most HANDOVER_REGISTRATION seconds) in the probe's statement;
        ``enqueue_one`` hands it a task ready now in an empty queue, sent on this
        backend's own channel, whose listener calls ``inbox``. Behind PgBouncer (no
        LISTEN) it is ``wait_for_work``."""
        be = self._be
        if be.poll_interval is not None or not await be.listen_push():
            return await self._wait(queues, timeout, None)
        be.inboxes[worker_id] = inbox
        timeout = min(timeout, HANDOVER_REGISTRATION)
        return await self._wait(queues, timeout, (worker_id, lease, now() + timeout + 1.0))

    async def close_inbox(self, worker_id: str) -> builtins.list[str]:
        if self._be.inboxes.pop(worker_id, None) is None:
            return []
        chan = self._be.work_channel
        rows = await self._call(lambda c: c.fetch(_Q["close_inbox"], worker_id, chan))
        return [r[0] for r in rows]

    async def _wait(
        self,
        queues: Sequence[str],
        timeout: float,  # noqa: ASYNC109
        idle: tuple[str, float, float] | None,
    ) -> bool:
        """Probe, then wait for a NOTIFY. ``idle`` (worker id, lease, registration end):
        register the worker for handovers in the probe's statement, and wake for a
        handover to it too."""
        keys = builtins.list(queues)
        be = self._be
        await be.listen_work()
        if be.poll_interval is not None:  # no LISTEN: look again soon
            timeout = min(timeout, be.poll_interval)
        watched = keys if idle is None else [*keys, push_key(idle[0])]
        reg = (None, None, None, None) if idle is None else (idle[0], be.push_channel, *idle[1:])
        with be.work_wake.watch(watched) as watch:
            r = await self._call(lambda c: c.fetchrow(_Q["wait_probe"], keys, *reg))
            t = now()
            if r["ready_now"]:
                return True
            wake_at = t + timeout
            for v in (r["next_eta"], r["next_lease"]):
                if v is not None:
                    wake_at = min(wake_at, v)
            if wake_at <= t:
                return True
            if await watch.wait(wake_at - t):
                return True
            return wake_at < t + timeout
