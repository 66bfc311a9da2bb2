"""The SQLite task queue: each operation is one ``BEGIN IMMEDIATE`` transaction.

The claim is one ``UPDATE ... WHERE id IN (SELECT ... ORDER BY priority DESC, id
LIMIT ?) RETURNING`` served by a partial index over ready pending tasks; expired
leases are returned to pending by one indexed ``UPDATE`` in the same transaction.
Dependency resolution runs inside the transaction of the completion that causes it.
"""

from __future__ import annotations

import builtins
import copy
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, cast

import msgspec

from omniq.models import ClaimedTask, LimitInfo, Task, TaskResult, TaskStatus, new_id, now
from omniq.storage._codec import encode
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
from omniq.storage._wake import Wake, wait_for_work

from ._caller import caller_db
from ._conn import Connection, placeholders
from ._control import SQLiteTaskControl
from ._flow import claim_limited, claim_standby, limit_info, limit_rows, not_limited, spare_standbys
from ._stores import Results
from ._unique import prune, replace_pending, reserve, reserved

__all__ = ["SQLiteTasks"]

_replace = msgspec.structs.replace
_FAILED = ("error", "cancelled", "expired")
_ENDED = ("success", *_FAILED)
_WAIT_ANY = 2
"""``ready`` of a conditional dependent (``Task.run_if``) still waiting: released, not
cancelled, when its dependencies end, once all of them have."""
_CHUNK = 500
_COLS = "id, queue, data, status, attempt, eta"


def _unpaused(c: sqlite3.Connection, qs: builtins.list[str]) -> builtins.list[str]:
    """The queues of ``qs`` not paused, read in the caller's transaction: a claim runs
    in one ``BEGIN IMMEDIATE`` transaction with this read, serialized with every pause,
    so a pause that committed holds for every later claim. (Filtering the queue list
    first keeps the claim on ``tasks_claim`` without testing each row of a paused
    queue.)"""
    rows = c.execute(
        f"SELECT queue FROM paused_queues WHERE queue IN ({placeholders(len(qs))})", qs
    ).fetchall()
    if not rows:
        return qs
    paused = {r[0] for r in rows}
    return [q for q in qs if q not in paused]


def _task(row: Sequence[Any], *, always: bool = False) -> Task | None:
    """A task from (id, queue, data, status, attempt, eta) columns; a corrupt record is
    a stand-in or None (``_corrupt.read_task``)."""
    t = read_task(row[2], row[0], row[1], row[3], row[4], always=always)
    if t is None or t.func == CORRUPT_FUNC:
        return t
    return _replace(t, status=TaskStatus(row[3]), attempt=row[4], eta=row[5])


def _stored(row: Sequence[Any]) -> Task:
    """``_task`` for enqueue: an id or key already taken, even by a corrupt record."""
    t = _task(row, always=True)
    assert t is not None
    return t


def _chunks(items: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for i in range(0, len(items), _CHUNK):
        yield items[i : i + _CHUNK]


def _select_in(c: sqlite3.Connection, sql: str, ids: Sequence[str], *args: Any) -> list[Any]:
    """Run ``sql`` (with ``{in}`` for the id placeholders) over ``ids`` in chunks."""
    out: list[Any] = []
    for chunk in _chunks(ids):
        out.extend(c.execute(sql.format(ph=placeholders(len(chunk))), [*chunk, *args]).fetchall())
    return out


class SQLiteTasks(SQLiteTaskControl, TaskQueueStorage):
    def __init__(self, db: Connection, poll_interval: float) -> None:
        self._db = db
        self._poll = poll_interval
        self.wake = Wake()
        self.results: Results | None = None
        """The backend's own result store: a quarantined record's result goes there, and
        ``cancel``/``expire`` write theirs in their own transaction when asked to."""
        self.limited: list[str] = []
        """The limit keys the last claim held tasks back for."""
        self.admitted: float | None = None
        """When (``time.monotonic``) the last claim counted its rate-limited starts:
        inside its write transaction, which the call may have waited for; None when it
        counted none."""

    async def list_limits(self) -> list[LimitInfo]:
        t = now()
        return await self._db.run(lambda c: limit_info(c, t))

    # -- enqueue -------------------------------------------------------------------

    async def enqueue(
        self,
        tasks: Sequence[Task],
        *,
        dependency_policy: DependencyPolicy = "cancel",
        record: ResultRecord | None = None,
    ) -> list[Task]:
        """``enqueue``; with ``record`` (``enqueue_with_results``), a task stored already
        cancelled gets its result in the same transaction when it belongs in this
        database, else right after it."""
        batch = list(tasks)
        self.payload_limit.check_tasks(batch)
        stamp = now()
        own = (
            record is not None and self.results is not None and record.result_store is self.results
        )
        born: list[Task] = []

        def run(c: sqlite3.Connection) -> list[Task]:
            born.clear()
            ids = [t.id for t in batch]
            existing = {
                r[0]: _stored(r)
                for r in _select_in(c, f"SELECT {_COLS} FROM tasks WHERE id IN ({{ph}})", ids)
            }
            keys = [t.key for t in batch if t.key is not None]
            by_key: dict[str, Task] = {}
            if keys:
                for r in _select_in(
                    c,
                    f"SELECT key, {_COLS} FROM tasks WHERE key IN ({{ph}})"
                    " AND status IN ('pending', 'running')",
                    keys,
                ):
                    by_key[r[0]] = _stored(r[1:])
                for k, held in reserved(c, keys, stamp, _COLS, _stored).items():
                    by_key.setdefault(k, held)
            dep_ids = sorted({d for t in batch for d in t.depends_on})
            dep_status: dict[str, str] = {}
            if dep_ids:
                dep_status = dict(
                    _select_in(c, "SELECT id, status FROM tasks WHERE id IN ({ph})", dep_ids)
                )
            out: list[Task] = []
            rows: list[tuple[Any, ...]] = []
            dep_rows: list[tuple[str, str]] = []
            for t in batch:
                found = existing.get(t.id) or (by_key.get(t.key) if t.key is not None else None)
                if found is not None:
                    if t.on_conflict == "replace" and found.id != t.id:
                        found = replace_pending(c, t, found)
                        existing[found.id] = by_key[found.key or ""] = found
                    out.append(found)
                    continue
                status, ready, finished = "pending", 1, None
                if t.depends_on and t.run_if is not None:
                    # Conditional: released once every dependency has ended (ready 2
                    # marks it waiting so while it does).
                    states = [dep_status.get(d) for d in t.depends_on]
                    if not all(s in _ENDED for s in states):
                        ready = _WAIT_ANY
                    dep_rows.extend((d, t.id) for d in t.depends_on)
                elif t.depends_on:
                    states = [dep_status.get(d) for d in t.depends_on]
                    if any(s in _FAILED for s in states):
                        if dependency_policy == "cancel":
                            status, finished = "cancelled", stamp
                    elif not all(s == "success" for s in states):
                        ready = 0
                    dep_rows.extend((d, t.id) for d in t.depends_on)
                stored = t
                if t.status.value != status:
                    stored = _replace(t, status=TaskStatus(status))
                rows.append(
                    (
                        t.id,
                        t.queue,
                        t.priority,
                        status,
                        ready,
                        t.eta,
                        t.expires_at,
                        t.attempt,
                        t.key,
                        finished,
                        encode(stored),
                    )
                )
                existing[t.id] = stored
                dep_status[t.id] = status
                if status == "cancelled":
                    born.append(stored)
                if t.key is not None and status == "pending":
                    by_key[t.key] = stored
                out.append(stored)
            c.executemany(
                "INSERT INTO tasks (id, queue, priority, status, ready, eta, expires_at, attempt,"
                " key, finished_at, data) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                rows,
            )
            if dep_rows:
                c.executemany("INSERT OR IGNORE INTO deps VALUES (?, ?)", dep_rows)
            reserve(c, [b for b, r in zip(batch, out, strict=True) if b is r])
            limited = limit_rows([b for b, r in zip(batch, out, strict=True) if b is r])
            if limited:
                c.executemany("INSERT OR REPLACE INTO task_limits VALUES (?,?,?,?,?,?)", limited)
            if own and record is not None and born:
                c.executemany(
                    "INSERT OR REPLACE INTO results VALUES (?, ?, ?)",
                    [
                        (r.task_id, r.expires_at, encode(r))
                        for r in record.results((), TaskStatus.CANCELLED, born, stamp)
                    ],
                )
            return out

        out = await self._db.tx(run)
        if born and own and self.results is not None:
            self.results.wake.notify([t.id for t in born])
        elif born and record is not None:
            await record.result_store.put(record.results((), TaskStatus.CANCELLED, born, now()))
        self.wake.notify()
        return out

    async def enqueue_with_results(
        self,
        tasks: Sequence[Task],
        record: ResultRecord,
        *,
        dependency_policy: DependencyPolicy = "cancel",
    ) -> list[Task]:
        return await self.enqueue(tasks, dependency_policy=dependency_policy, record=record)

    async def enqueue_in_transaction(
        self,
        connection: object,
        tasks: Sequence[Task],
        *,
        dependency_policy: DependencyPolicy = "cancel",
        record: ResultRecord | None = None,
    ) -> list[Task]:
        """``enqueue`` run on the caller's sqlite3 connection to this database file,
        inside its transaction (``_caller``)."""
        bound = copy.copy(self)
        bound._db = cast(Connection, caller_db(connection, self._db.path))
        return await bound.enqueue(tasks, dependency_policy=dependency_policy, record=record)

    # -- claim and lease operations --------------------------------------------------

    async def claim(
        self, queues: Sequence[str], worker_id: str, *, limit: int = 1, lease: float = 30.0
    ) -> list[ClaimedTask]:
        return await self._claim(queues, worker_id, limit, lease, plain=True)

    async def claim_limited(
        self, queues: Sequence[str], worker_id: str, *, limit: int = 1, lease: float = 30.0
    ) -> list[ClaimedTask]:
        """Claim flow-limited tasks only, within their limits: what a worker that just
        freed concurrency slots asks for (its plain claims take the rest)."""
        return await self._claim(queues, worker_id, limit, lease, plain=False)

    async def _claim(
        self, queues: Sequence[str], worker_id: str, limit: int, lease: float, *, plain: bool
    ) -> list[ClaimedTask]:
        qs = list(dict.fromkeys(queues))
        self.limited = []
        if not qs or limit <= 0:
            return []
        token = new_id()
        clock = [0.0, 0.0]  # lease end, time.monotonic(): read inside the write lock

        def run(c: sqlite3.Connection) -> list[Any]:
            t = now()
            until = t + lease
            clock[:] = [until, time.monotonic()]
            _reclaim(c, t)
            live = _unpaused(c, qs)
            if not live:
                return []
            if not plain:
                got, self.limited = claim_limited(
                    c, live, t, limit, token=token, worker_id=worker_id, until=until, cols=_COLS
                )
                return got
            sql = (
                "UPDATE tasks SET status = 'running', attempt = attempt + 1, token = ?,"
                " worker_id = ?, lease_expires_at = ? WHERE id IN (SELECT id FROM tasks"
                f" WHERE status = 'pending' AND ready = 1 AND queue IN ({placeholders(len(live))})"
                " AND (eta IS NULL OR eta <= ?) AND (expires_at IS NULL OR expires_at > ?)"
                f"{not_limited} ORDER BY priority DESC, id LIMIT ?)"
                f" RETURNING priority, {_COLS}"
            )
            got = c.execute(sql, [token, worker_id, until, *live, t, t, limit]).fetchall()
            if len(got) < limit:
                more, self.limited = claim_limited(
                    c,
                    live,
                    t,
                    limit - len(got),
                    token=token,
                    worker_id=worker_id,
                    until=until,
                    cols=_COLS,
                )
                got.extend(more)
            return got

        rows = await self._db.tx(run)
        until, at = clock
        got = await self._claimed(rows, token, until, worker_id, lease)
        self.admitted = at if any(c.task.rate_limit is not None for c in got) else None
        return got

    async def claim_standby(
        self, queues: Sequence[str], worker_id: str, *, behind: ClaimedTask, lease: float = 30.0
    ) -> ClaimedTask | None:
        """A task to run in the concurrency slot of ``behind`` (a running claim of this
        worker under a cap without a rate) once that run ended, claimed now so it
        starts the moment that run ends: the key's next ready task, running with a
        ``limit_standbys`` row naming ``behind``'s claim, so while both run they take
        one slot. The caller renews its lease until it runs it, and releases it when
        it will not. None when no task of that key is ready, or ``behind`` has ended or
        has a standby already."""
        qs = list(dict.fromkeys(queues))
        t = now()
        token = new_id()
        until = t + lease
        ref = (behind.task.id, behind.token)

        def run(c: sqlite3.Connection) -> list[Any]:
            _reclaim(c, t)
            return claim_standby(
                c,
                _unpaused(c, qs),
                t,
                ref,
                token=token,
                worker_id=worker_id,
                until=until,
                cols=_COLS,
            )

        rows = await self._db.tx(run)
        got = await self._claimed(rows, token, until, worker_id, lease)
        return got[0] if got else None

    async def _claimed(
        self, rows: list[Any], token: str, until: float, worker_id: str, lease: float
    ) -> list[ClaimedTask]:
        rows.sort(key=lambda r: (-r[0], r[1]))
        out: list[ClaimedTask] = []
        bad: list[Corrupt] = []
        for r in rows:
            got = try_task(r[3])
            if isinstance(got, Task):
                task = _replace(got, status=TaskStatus.RUNNING, attempt=r[5], eta=r[6])
                out.append(
                    ClaimedTask(task=task, token=token, lease_expires_at=until, worker_id=worker_id)
                )
            else:
                bad.append(Corrupt(r[1], token, str(got), r[5], r[2]))
        await quarantine(self, self.results, bad, lease=lease)
        return out

    async def _leased_update(self, set_sql: str, rows: Sequence[tuple[Any, ...]]) -> list[str]:
        """Apply ``set_sql`` to (..., id, token) rows still leased; returns stale ids."""
        sql = f"UPDATE tasks SET {set_sql} WHERE id = ? AND token = ? AND status = 'running'"

        def run(c: sqlite3.Connection) -> list[str]:
            return [r[-2] for r in rows if c.execute(sql, r).rowcount == 0]

        return await self._db.tx(run)

    async def renew(self, leases: Sequence[LeaseRef], lease: float) -> list[str]:
        until = now() + lease
        return await self._leased_update(
            "lease_expires_at = ?", [(until, x.task_id, x.token) for x in leases]
        )

    async def retry(self, requests: Sequence[RetryRequest]) -> list[str]:
        stale = await self._leased_update(
            "status = 'pending', eta = ?, token = NULL, worker_id = NULL, lease_expires_at = NULL",
            [(r.eta, r.task_id, r.token) for r in requests],
        )
        self.wake.notify()
        return stale

    async def defer(self, requests: Sequence[RetryRequest]) -> list[str]:
        stale = await self._leased_update(
            "status = 'pending', eta = ?, attempt = max(attempt - 1, 0), token = NULL,"
            " worker_id = NULL, lease_expires_at = NULL",
            [(r.eta, r.task_id, r.token) for r in requests],
        )
        self.wake.notify()
        return stale

    async def release(self, leases: Sequence[LeaseRef]) -> list[str]:
        stale = await self._leased_update(
            "status = 'pending', attempt = max(attempt - 1, 0), token = NULL, worker_id = NULL,"
            " lease_expires_at = NULL",
            [(x.task_id, x.token) for x in leases],
        )
        self.wake.notify()
        return stale

    async def complete(
        self, completions: Sequence[Completion], *, dependency_policy: DependencyPolicy = "cancel"
    ) -> CompletionReport:
        return await self._complete(completions, dependency_policy, None)

    async def complete_with_results(
        self,
        completions: Sequence[Completion],
        record: ResultRecord,
        *,
        dependency_policy: DependencyPolicy = "cancel",
    ) -> CompletionReport:
        """The completion and its cascade's results in one transaction when they live in
        this database."""
        if self.results is None or record.result_store is not self.results:
            return await super().complete_with_results(
                completions, record, dependency_policy=dependency_policy
            )
        return await self._complete(completions, dependency_policy, record)

    async def _complete(
        self,
        completions: Sequence[Completion],
        dependency_policy: DependencyPolicy,
        record: ResultRecord | None,
    ) -> CompletionReport:
        items = list(completions)
        t = now()

        def run(c: sqlite3.Connection) -> tuple[CompletionReport, list[Task]]:
            return _completed(c, items, dependency_policy, t), []  # results: the worker's

        return await self._end(run, record, TaskStatus.CANCELLED, t)

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
    ) -> tuple[CompletionReport, list[ClaimedTask]] | None:
        """Complete, store the results of the tasks completed, and claim limited tasks
        for the concurrency slots that freed, in one transaction: what a worker ending
        capped tasks does. None, doing nothing, when the results do not live in this
        database or the batch's failures may cancel dependents with a ``record`` (the
        caller then finishes and claims apart)."""
        by_id = {r.task_id: r for r in results}
        qs = list(dict.fromkeys(queues))
        if (
            limit <= 0
            or not qs
            or not completions
            or result_store is None
            or result_store is not self.results
            or len(by_id) != len(results)
            or not by_id.keys() <= {c.task_id for c in completions}
            or (record is not None and cascades(completions, dependency_policy))
        ):
            return None
        store = self.results
        assert store is not None  # it is result_store
        store.payload_limit.check_results(results)
        items = list(completions)
        rows = [(r.task_id, r.expires_at, encode(r)) for r in results]
        token = new_id()
        held: list[str] = []
        clock = [0.0, 0.0]  # lease end, time.monotonic(): read inside the write lock

        def run(c: sqlite3.Connection) -> tuple[CompletionReport, list[Any]]:
            t = now()
            until = t + lease
            clock[:] = [until, time.monotonic()]
            report = _completed(c, items, dependency_policy, t)
            done = set(report.done)
            c.executemany(
                "INSERT OR REPLACE INTO results VALUES (?, ?, ?)",
                [r for r in rows if r[0] in done],
            )
            _reclaim(c, t)
            live = _unpaused(c, qs)
            if not live:
                return report, []
            got, keys = claim_limited(
                c, live, t, limit, token=token, worker_id=worker_id, until=until, cols=_COLS
            )
            held.extend(keys)
            return report, got

        report, got = await self._db.tx(run)
        self.limited = held
        until, at = clock
        stored = [i for i in report.done if i in by_id]
        if stored:
            store.wake.notify(stored)
        if report.released:
            self.wake.notify()
        claimed = await self._claimed(got, token, until, worker_id, lease)
        self.admitted = at if any(c.task.rate_limit is not None for c in claimed) else None
        return report, claimed

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
        return await self._cancel(task_ids, dependency_policy, record)

    async def _cancel(
        self,
        task_ids: Sequence[str],
        dependency_policy: DependencyPolicy,
        record: ResultRecord | None,
    ) -> CompletionReport:
        ids = list(dict.fromkeys(task_ids))
        t = now()

        def run(c: sqlite3.Connection) -> tuple[CompletionReport, list[Task]]:
            report = CompletionReport()
            ended: list[Task] = []
            for tid in ids:
                row = c.execute(
                    "UPDATE tasks SET status = 'cancelled', finished_at = ?, token = NULL,"
                    " lease_expires_at = NULL WHERE id = ? AND status IN ('pending', 'running')"
                    f" RETURNING {_COLS}",
                    (t, tid),
                ).fetchone()
                if row is not None:
                    report.done.append(tid)
                    ended.append(_stored(row))
            _resolve(c, [(i, "cancelled") for i in report.done], dependency_policy, t, report)
            return report, ended

        return await self._end(run, record, TaskStatus.CANCELLED, t)

    unique_prune_every = 10.0
    """Seconds between two prunes of ended ``task_unique`` windows by ``maintain`` (per
    process; the first call prunes)."""
    _unique_prune_at = 0.0

    async def maintain(self) -> None:
        t = time.monotonic()
        if t >= self._unique_prune_at:
            self._unique_prune_at = t + self.unique_prune_every
            at = now()
            await self._db.tx(lambda c: prune(c, at))

    async def reclaim_expired(self) -> list[str]:
        t = now()
        ids = await self._db.tx(lambda c: _reclaim(c, t))
        if ids:
            self.wake.notify()
        return ids

    async def expire(self, *, dependency_policy: DependencyPolicy = "cancel") -> CompletionReport:
        return await self._expire(dependency_policy, None)

    async def expire_with_results(
        self, record: ResultRecord, *, dependency_policy: DependencyPolicy = "cancel"
    ) -> CompletionReport:
        return await self._expire(dependency_policy, record)

    async def _expire(
        self, dependency_policy: DependencyPolicy, record: ResultRecord | None
    ) -> CompletionReport:
        t = now()

        def run(c: sqlite3.Connection) -> tuple[CompletionReport, list[Task]]:
            rows = c.execute(
                "UPDATE tasks SET status = 'expired', finished_at = ? WHERE status = 'pending'"
                f" AND expires_at IS NOT NULL AND expires_at <= ? RETURNING {_COLS}",
                (t, t),
            ).fetchall()
            ended = sorted((_stored(r) for r in rows), key=lambda x: x.id)
            report = CompletionReport(done=[x.id for x in ended])
            _resolve(c, [(i, "expired") for i in report.done], dependency_policy, t, report)
            return report, ended

        return await self._end(run, record, TaskStatus.EXPIRED, t)

    async def _end(
        self,
        step: Callable[[sqlite3.Connection], tuple[CompletionReport, list[Task]]],
        record: ResultRecord | None,
        status: TaskStatus,
        t: float,
    ) -> CompletionReport:
        """Run a cancel/expire/complete transaction; ``record``'s results (of the ended
        tasks the step returns and of the dependents it cancelled) go into the same
        transaction when they belong in this database, else right after it."""
        own = (
            record is not None and self.results is not None and record.result_store is self.results
        )
        written: list[str] = []

        def run(c: sqlite3.Connection) -> CompletionReport:
            report, ended = step(c)
            if own and record is not None:
                results = record.results(ended, status, report.cancelled, t)
                c.executemany(
                    "INSERT OR REPLACE INTO results VALUES (?, ?, ?)",
                    [(r.task_id, r.expires_at, encode(r)) for r in results],
                )
                written.extend(r.task_id for r in results)
            return report

        report = await self._db.tx(run)
        if written and self.results is not None:
            self.results.wake.notify(written)
        if record is not None and not own:
            await self.record_results(report, record, status)
        if report.released:
            self.wake.notify()
        return report

    async def get(self, task_ids: Sequence[str]) -> list[Task | None]:
        ids = list(task_ids)
        rows = await self._db.run(
            lambda c: _select_in(c, f"SELECT {_COLS} FROM tasks WHERE id IN ({{ph}})", ids)
        )
        found = {r[0]: r for r in rows}
        return [_task(found[i]) if i in found else None for i in ids]

    @staticmethod
    def _where(queue: str | None, status: TaskStatus | None) -> tuple[str, list[Any]]:
        where, args = [], []
        if queue is not None:
            where.append("queue = ?")
            args.append(queue)
        if status is not None:
            # A literal (from the enum, never user text) lets SQLite use the partial
            # indexes of the rare statuses (tasks_error, ...), which a parameter hides.
            where.append(f"status = '{TaskStatus(status).value}'")
        # Running tasks are few (at most the workers' concurrency): read them from
        # tasks_lease rather than walking the id index past every other task.
        hint = " INDEXED BY tasks_lease" if status == TaskStatus.RUNNING else ""
        return (hint + " WHERE " + " AND ".join(where) if where else ""), args

    async def list(
        self,
        *,
        queue: str | None = None,
        status: TaskStatus | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[Task]:
        where, args = self._where(queue, status)
        sql = f"SELECT {_COLS} FROM tasks{where} ORDER BY id LIMIT ? OFFSET ?"
        rows = await self._db.run(lambda c: c.execute(sql, [*args, limit, offset]).fetchall())
        return [t for t in map(_task, rows) if t is not None]

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
                where += f"{' AND' if where else ' WHERE'} id {op} ?"
                args.append(bound)
        sql = f"SELECT {_COLS} FROM tasks{where} ORDER BY id DESC LIMIT ?"
        rows = await self._db.run(lambda c: c.execute(sql, [*args, max(limit, 0)]).fetchall())
        return [t for t in map(_task, rows) if t is not None]

    async def count(self, *, queue: str | None = None, status: TaskStatus | None = None) -> int:
        where, args = self._where(queue, status)
        row = await self._db.run(
            lambda c: c.execute(f"SELECT count(*) FROM tasks{where}", args).fetchone()
        )
        return int(row[0])

    async def counts(self) -> dict[tuple[str, TaskStatus], int]:
        # It reads every task: apart, so the store's thread stays free meanwhile.
        rows = await self._db.read_apart(
            lambda c: c.execute(
                "SELECT queue, status, count(*) FROM tasks GROUP BY queue, status"
            ).fetchall()
        )
        return {(q, TaskStatus(s)): n for q, s, n in rows}

    async def purge(self, *, finished_before: float, status: TaskStatus | None = None) -> int:
        cond = (
            "status IN ('success', 'error', 'cancelled', 'expired') AND finished_at IS NOT NULL"
            " AND finished_at < ?"
        )
        args: tuple[Any, ...] = (finished_before,)
        if status is not None:
            cond += " AND status = ?"
            args += (TaskStatus(status).value,)

        def run(c: sqlite3.Connection) -> int:
            c.execute(
                f"DELETE FROM deps WHERE task_id IN (SELECT id FROM tasks WHERE {cond})", args
            )
            n = int(c.execute(f"DELETE FROM tasks WHERE {cond}", args).rowcount)
            if n:
                c.execute("DELETE FROM task_limits WHERE task_id NOT IN (SELECT id FROM tasks)")
                c.execute("DELETE FROM limit_standbys WHERE task_id NOT IN (SELECT id FROM tasks)")
            prune(c, now())
            return n

        return await self._db.tx(run)

    async def requeue(self, task_ids: Sequence[str]) -> builtins.list[str]:
        ids = list(dict.fromkeys(task_ids))

        def run(c: sqlite3.Connection) -> list[str]:
            done: set[str] = set()
            for chunk in _chunks(ids):
                # OR IGNORE: a task whose idempotency key a live task now holds stays put.
                rows = c.execute(
                    "UPDATE OR IGNORE tasks SET status = 'pending', attempt = 0, eta = NULL,"
                    " token = NULL, worker_id = NULL, lease_expires_at = NULL, finished_at = NULL"
                    f" WHERE status = 'error' AND id IN ({placeholders(len(chunk))})"
                    " RETURNING id",
                    chunk,
                ).fetchall()
                done.update(r[0] for r in rows)
            return [i for i in ids if i in done]

        out = await self._db.tx(run)
        if out:
            self.wake.notify()
        return out

    # -- paused queues ---------------------------------------------------------------

    async def pause_queue(self, queue: str) -> bool:
        t = now()
        return await self._db.tx(
            lambda c: (
                c.execute("INSERT OR IGNORE INTO paused_queues VALUES (?, ?)", (queue, t)).rowcount
                > 0
            )
        )

    async def resume_queue(self, queue: str) -> bool:
        done = await self._db.tx(
            lambda c: c.execute("DELETE FROM paused_queues WHERE queue = ?", (queue,)).rowcount > 0
        )
        self.wake.notify()
        return done

    async def paused_queues(self) -> builtins.list[str]:
        rows = await self._db.run(
            lambda c: c.execute("SELECT queue FROM paused_queues ORDER BY queue").fetchall()
        )
        return [r[0] for r in rows]

    async def wait_for_work(self, queues: Sequence[str], timeout: float) -> bool:  # noqa: ASYNC109
        all_qs = list(dict.fromkeys(queues))
        lease_sql = "SELECT min(lease_expires_at) FROM tasks WHERE status = 'running'"

        async def probe() -> tuple[bool, float | None, int]:
            version = self.wake.version
            t = now()

            def run(c: sqlite3.Connection) -> tuple[bool, float | None]:
                qs = _unpaused(c, all_qs) if all_qs else all_qs
                ph = placeholders(len(qs))
                ready_sql = (
                    "SELECT 1 FROM tasks WHERE status = 'pending' AND ready = 1"
                    f" AND queue IN ({ph}) AND (eta IS NULL OR eta <= ?)"
                    " AND (expires_at IS NULL OR expires_at > ?) LIMIT 1"
                )
                eta_sql = (
                    "SELECT min(eta) FROM tasks WHERE status = 'pending' AND ready = 1"
                    f" AND queue IN ({ph}) AND eta > ?"
                )
                if c.execute(ready_sql, [*qs, t, t]).fetchone() is not None:
                    return True, None
                etas = [
                    c.execute(eta_sql, [*qs, t]).fetchone()[0],
                    c.execute(lease_sql).fetchone()[0],
                ]
                known = [e for e in etas if e is not None]
                return False, (min(known) if known else None)

            ready, eta = await self._db.run(run)
            return ready, eta, version

        async def data_version() -> int:
            return int(await self._db.run(lambda c: c.execute("PRAGMA data_version").fetchone()[0]))

        return await wait_for_work(
            self.wake, probe, timeout, poll=data_version, max_poll=self._poll
        )


def _reclaim(c: sqlite3.Connection, t: float) -> list[str]:
    lapsed = c.execute(
        "SELECT 1 FROM tasks WHERE status = 'running' AND lease_expires_at <= ? LIMIT 1", (t,)
    ).fetchone()
    if lapsed is None:
        return []
    spare_standbys(c, t)
    rows = c.execute(
        "UPDATE tasks SET status = 'pending', token = NULL, worker_id = NULL,"
        " lease_expires_at = NULL WHERE status = 'running' AND lease_expires_at <= ? RETURNING id",
        (t,),
    ).fetchall()
    return [r[0] for r in rows]


def _resolve(
    c: sqlite3.Connection,
    finished: list[tuple[str, str]],
    policy: DependencyPolicy,
    t: float,
    report: CompletionReport,
) -> None:
    """Release or (transitively) cancel the waiting dependents of tasks that ended."""
    todo = list(finished)
    while todo:
        batch, todo = todo, []
        ids = [i for i, _ in batch]
        children = _select_in(c, "SELECT dep_id, task_id FROM deps WHERE dep_id IN ({ph})", ids)
        if not children:
            return
        status_of = dict(batch)
        for parent, child in sorted(children, key=lambda r: (r[0], r[1])):
            row = c.execute(
                "UPDATE tasks SET ready = 1 WHERE id = ? AND status = 'pending' AND ready = 2"
                " AND NOT EXISTS (SELECT 1 FROM deps d LEFT JOIN tasks p ON p.id = d.dep_id"
                " WHERE d.task_id = tasks.id AND (p.status IS NULL"
                " OR p.status IN ('pending', 'running'))) RETURNING id",
                (child,),
            ).fetchone()
            if row is not None:
                report.released.append(child)
                continue
            if status_of[parent] == "success":
                row = c.execute(
                    "UPDATE tasks SET ready = 1 WHERE id = ? AND status = 'pending' AND ready = 0"
                    " AND NOT EXISTS (SELECT 1 FROM deps d LEFT JOIN tasks p ON p.id = d.dep_id"
                    " WHERE d.task_id = tasks.id AND (p.status IS NULL OR p.status != 'success'))"
                    " RETURNING id",
                    (child,),
                ).fetchone()
                if row is not None:
                    report.released.append(child)
            elif policy == "cancel":
                row = c.execute(
                    "UPDATE tasks SET status = 'cancelled', finished_at = ? WHERE id = ?"
                    f" AND status = 'pending' AND ready = 0 RETURNING {_COLS}",
                    (t, child),
                ).fetchone()
                if row is not None:
                    report.cancelled.append(_stored(row))
                    todo.append((child, "cancelled"))
            else:
                row = c.execute(
                    "UPDATE tasks SET ready = 1 WHERE id = ? AND status = 'pending' AND ready = 0"
                    " RETURNING id",
                    (child,),
                ).fetchone()
                if row is not None:
                    report.released.append(child)


def _completed(
    c: sqlite3.Connection, items: list[Completion], dependency_policy: DependencyPolicy, t: float
) -> CompletionReport:
    """Complete ``items`` (fenced by their tokens) and resolve their dependents."""
    report = CompletionReport()
    done: dict[str, str] = {}
    for chunk in _chunks(items):
        values = ",".join("(?,?,?)" for _ in chunk)
        args: list[Any] = [t]
        for x in chunk:
            args += [x.task_id, x.token, TaskStatus(x.status).value]
        rows = c.execute(
            "UPDATE tasks SET status = v.column3, finished_at = ?, token = NULL,"
            " lease_expires_at = NULL"
            f" FROM (VALUES {values}) AS v WHERE tasks.id = v.column1"
            " AND tasks.token = v.column2 AND tasks.status = 'running'"
            " AND v.column3 IN ('success', 'error', 'cancelled', 'expired')"
            " RETURNING tasks.id, tasks.status",
            args,
        ).fetchall()
        done.update(rows)
    for x in items:
        (report.done if x.task_id in done else report.stale).append(x.task_id)
    _resolve(c, list(done.items()), dependency_policy, t, report)
    return report
