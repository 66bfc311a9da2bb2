"""The in-process queue state machine shared by the memory and file backends.

``QueueState`` holds task records and schedules in dicts with heap indexes for the
claim path (ready by priority/id per queue, delayed by eta, leases by expiry, TTL
by expires_at). Every operation is synchronous and must run under the caller's lock;
it records the ids it changed in ``dirty``/``deleted`` so the file backend can append
exactly those records to its journal. ``put_record`` re-indexes a record and is also
how a journal is replayed, so the indexes are always derivable from the records.
Heap entries are validated lazily when popped (stale entries are skipped).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Sequence

import msgspec

from omniq.models import (
    TERMINAL_STATUSES,
    ClaimedTask,
    LimitInfo,
    Schedule,
    ScheduleState,
    Task,
    TaskStatus,
    limit_of,
    new_id,
)

from ._corrupt import Corrupt
from ._flow_state import LimitIndex, Usage, lease_live, usage_of
from ._interfaces import (
    Completion,
    CompletionReport,
    DependencyPolicy,
    LeaseRef,
    RetryRequest,
    ScheduleRun,
)

__all__ = ["QueueState", "TaskRecord"]

_replace = msgspec.structs.replace
_FAILED = frozenset({TaskStatus.ERROR, TaskStatus.CANCELLED, TaskStatus.EXPIRED})


class TaskRecord(msgspec.Struct, array_like=True):
    """A stored task plus its lease; ``task.status``/``task.attempt`` are current."""

    task: Task
    token: str | None = None
    worker_id: str | None = None
    lease_expires_at: float | None = None
    finished_at: float | None = None
    released: bool = False
    """Dependencies overridden (a dependency failed under the ``release`` policy)."""
    starts: tuple[float, ...] = ()
    """Claim times inside the rate window of the task's limit (flow-limited tasks)."""
    standby_of: tuple[str, str] | None = None
    """Claimed as a standby (``claim_standby``): the id and token of the running claim
    whose concurrency slot it takes once that run ends; while that claim runs too, the
    two count as one running task of the key."""
    spared: bool = False
    """A lapsed standby lease gave the task its attempt back once already."""


class QueueState:
    """Tasks and schedules of one store, indexed for claiming."""

    def __init__(self) -> None:
        self.recs: dict[str, TaskRecord] = {}
        self.schedules: dict[str, Schedule] = {}
        self._ready: dict[str, list[tuple[int, str]]] = {}
        """Ready tasks without limits, per queue, by ``(-priority, id)``."""
        self._lanes: dict[tuple[str, str], list[tuple[int, str]]] = {}
        """Ready flow-limited tasks per (queue, limit key)."""
        self._heads: dict[str, list[tuple[tuple[int, str], str]]] = {}
        """Per queue, ``(entry, key)`` for the first entry of each of its lanes (and
        items gone stale, dropped when they come up): the top that is still its lane's
        first ready entry is the queue's best limited task, and a full key is passed
        over by popping its one item, not its backlog."""
        self._rep: dict[tuple[str, str], tuple[int, str]] = {}
        """The entry each lane last put into ``_heads``."""
        self._delayed: list[tuple[float, str]] = []
        self._leases: list[tuple[float, str]] = []
        self._ttl: list[tuple[float, str]] = []
        self._keys: dict[str, str] = {}
        self._dependents: dict[str, set[str]] = {}
        self.limits = LimitIndex()
        """Flow-limited task ids per limit key."""
        self.dirty: set[str] = set()
        self.deleted: set[str] = set()
        self.dirty_schedules: set[str] = set()
        self.deleted_schedules: set[str] = set()
        self.paused: set[str] = set()
        """Paused queues: ``claim`` leases none of their tasks."""
        self.paused_dirty = False
        """``paused`` changed (the file backend journals the whole set)."""
        self.limited: list[str] = []
        """The limit keys the last ``claim`` held tasks back for."""
        self.corrupt: list[Corrupt] = []
        """Records a journal replay found corrupt and replaced with error stand-ins; the
        file backend stores their dead-letter results and empties the list."""

    # -- indexing ------------------------------------------------------------------

    def reset_changes(self) -> None:
        self.dirty.clear()
        self.deleted.clear()
        self.dirty_schedules.clear()
        self.deleted_schedules.clear()
        self.paused_dirty = False

    def put_record(self, rec: TaskRecord, now: float) -> None:
        """Store ``rec`` and index it by its status (also used to replay a journal)."""
        t = rec.task
        self.recs[t.id] = rec
        if t.limit_key is not None or t.rate_limit is not None or t.max_concurrency is not None:
            self.limits.add(t)
        if t.key is not None:
            if t.holds_key(now):
                self._keys[t.key] = t.id
            elif self._keys.get(t.key) == t.id:
                del self._keys[t.key]
        if t.status is TaskStatus.PENDING:
            if t.expires_at is not None:
                heapq.heappush(self._ttl, (t.expires_at, t.id))
            if not self._deps_met(rec):
                for dep in t.depends_on:
                    self._dependents.setdefault(dep, set()).add(t.id)
            elif t.eta is not None and t.eta > now:
                heapq.heappush(self._delayed, (t.eta, t.id))
            else:
                self._push_ready(t)
        elif t.status is TaskStatus.RUNNING and rec.lease_expires_at is not None:
            heapq.heappush(self._leases, (rec.lease_expires_at, t.id))

    def delete_record(self, task_id: str) -> None:
        rec = self.recs.pop(task_id, None)
        if rec is not None:
            self.limits.discard(rec.task)
        if rec is not None and rec.task.key is not None and self._keys.get(rec.task.key) == task_id:
            del self._keys[rec.task.key]

    def _save(self, rec: TaskRecord, now: float) -> None:
        self.put_record(rec, now)
        self.dirty.add(rec.task.id)

    def _deps_met(self, rec: TaskRecord) -> bool:
        if rec.released:
            return True
        if rec.task.run_if is not None:  # released once every dependency has ended
            return all(
                (d := self.recs.get(dep)) is not None and d.task.status.is_terminal
                for dep in rec.task.depends_on
            )
        for dep in rec.task.depends_on:
            d = self.recs.get(dep)
            if d is None or d.task.status is not TaskStatus.SUCCESS:
                return False
        return True

    def _is_ready(self, rec: TaskRecord, now: float) -> bool:
        t = rec.task
        return (
            t.status is TaskStatus.PENDING
            and (t.eta is None or t.eta <= now)
            and (t.expires_at is None or t.expires_at > now)
            and self._deps_met(rec)
        )

    def _promote(self, now: float) -> None:
        delayed = self._delayed
        while delayed and delayed[0][0] <= now:
            _, tid = heapq.heappop(delayed)
            rec = self.recs.get(tid)
            if rec is not None and self._is_ready(rec, now):
                self._push_ready(rec.task)

    def _push_ready(self, t: Task) -> None:
        entry = (-t.priority, t.id)
        key = self.limits.key_of.get(t.id)
        if key is None:
            heapq.heappush(self._ready.setdefault(t.queue, []), entry)
            return
        lane = self._lanes.setdefault((t.queue, key), [])
        heapq.heappush(lane, entry)
        if lane[0] == entry:
            self._represent(t.queue, key, entry)

    def _represent(self, queue: str, key: str, entry: tuple[int, str] | None) -> None:
        """Make ``entry`` (the first of the lane, or None) the lane's item in ``_heads``."""
        if entry is None:
            self._rep.pop((queue, key), None)
        elif self._rep.get((queue, key)) != entry:
            heapq.heappush(self._heads.setdefault(queue, []), (entry, key))
            self._rep[queue, key] = entry

    def _first(
        self, heap: list[tuple[int, str]] | None, now: float, taken: set[str]
    ) -> tuple[int, str] | None:
        """The top of ``heap`` once the entries no longer ready are popped off it."""
        while heap:
            entry = heap[0]
            rec = self.recs.get(entry[1])
            if rec is not None and entry[1] not in taken and self._is_ready(rec, now):
                return entry
            heapq.heappop(heap)
        return None

    def _head(self, queue: str, now: float, taken: set[str]) -> tuple[int, str] | None:
        return self._first(self._ready.get(queue), now, taken)

    def _limited_head(
        self,
        queue: str,
        now: float,
        taken: set[str],
        full: set[str],
        passed: list[tuple[str, tuple[tuple[int, str], str]]],
    ) -> tuple[tuple[int, str], str] | None:
        """The best ready limited task of ``queue`` whose key is not in ``full``, as
        ``(entry, key)``; the heads of full keys are moved to ``passed`` (the caller
        pushes them back)."""
        heads = self._heads.get(queue)
        while heads:
            item = heads[0]
            entry, key = item
            if key in full:
                passed.append((queue, heapq.heappop(heads)))
                continue
            first = self._first(self._lanes.get((queue, key)), now, taken)
            if first == entry:
                return item
            heapq.heappop(heads)  # stale: that entry left its lane (its task was taken)
            self._represent(queue, key, first)
        return None

    def next_eta(self) -> float | None:
        """Earliest eta of a delayed task (a wait should wake then)."""
        return self._delayed[0][0] if self._delayed else None

    def has_ready(self, queues: Sequence[str], now: float) -> bool:
        self._promote(now)
        paused = self.paused
        return any(
            q not in paused
            and (
                self._head(q, now, set()) is not None
                or self._limited_head(q, now, set(), set(), []) is not None
            )
            for q in queues
        )

    # -- task operations -----------------------------------------------------------

    def enqueue(
        self, tasks: Sequence[Task], now: float, policy: DependencyPolicy = "cancel"
    ) -> list[Task]:
        out: list[Task] = []
        for task in tasks:
            existing = self.recs.get(task.id)
            if existing is None and task.key is not None:
                kid = self._keys.get(task.key)
                holder = self.recs.get(kid) if kid is not None else None
                if holder is not None and holder.task.holds_key(now):
                    existing = holder
                    if task.on_conflict == "replace" and holder.task.status is TaskStatus.PENDING:
                        holder.task = _replace(holder.task, payload=task.payload, eta=task.eta)
                        self._save(holder, now)
            if existing is not None:
                out.append(existing.task)
                continue
            t = (
                task
                if task.status is TaskStatus.PENDING
                else _replace(task, status=TaskStatus.PENDING)
            )
            rec = TaskRecord(t)
            failed = t.run_if is None and any(
                (d := self.recs.get(dep)) is not None and d.task.status in _FAILED
                for dep in t.depends_on
            )
            if failed:
                if policy == "cancel":
                    rec.task = _replace(t, status=TaskStatus.CANCELLED)
                    rec.finished_at = now
                else:
                    rec.released = True
            self._save(rec, now)
            out.append(rec.task)
        return out

    def claim(
        self, queues: Sequence[str], worker_id: str, limit: int, lease: float, now: float
    ) -> list[ClaimedTask]:
        self.reclaim_expired(now)
        self._promote(now)
        token = new_id()
        until = now + lease
        taken: set[str] = set()
        out: list[ClaimedTask] = []
        qs = [q for q in dict.fromkeys(queues) if q not in self.paused]
        held: list[tuple[str, tuple[int, str], str]] = []
        passed: list[tuple[str, tuple[tuple[int, str], str]]] = []
        full: set[str] = set()
        usage: dict[str, Usage] = {}
        while len(out) < limit:
            best: tuple[int, str] | None = None
            best_q = ""
            best_key: str | None = None
            for q in qs:
                head = self._head(q, now, taken)
                if head is not None and (best is None or head < best):
                    best, best_q, best_key = head, q, None
                lim = self._limited_head(q, now, taken, full, passed)
                if lim is not None and (best is None or lim[0] < best):
                    best, best_q, best_key = lim[0], q, lim[1]
            if best is None:
                break
            if best_key is None:
                heapq.heappop(self._ready[best_q])
            else:
                lane = self._lanes[best_q, best_key]
                heapq.heappop(lane)
                heapq.heappop(self._heads[best_q])
                if self._rep.get((best_q, best_key)) == best:
                    self._rep.pop((best_q, best_key))
                self._represent(best_q, best_key, lane[0] if lane else None)
            rec = self.recs[best[1]]
            taken.add(best[1])
            spec = limit_of(rec.task) if best_key is not None else None
            if spec is not None:
                use = usage.get(spec.key)
                if use is None:
                    use = usage[spec.key] = usage_of(
                        spec, self.limits.records(spec.key, self.recs), now
                    )
                if not use.admits(spec):
                    full.add(spec.key)  # held back: pending, no attempt, not in the way
                    held.append((best_q, best, spec.key))
                    continue
                use.take()
                since = now - spec.rate.window if spec.rate is not None else now
                rec.starts = (*(s for s in rec.starts if s > since), now)
            out.append(self._lease(rec, token, worker_id, until, now=now))
        for q, entry, key in held:
            heapq.heappush(self._lanes[q, key], entry)
            heapq.heappush(self._heads[q], (entry, key))
            self._rep[q, key] = entry
        for q, item in passed:
            heapq.heappush(self._heads[q], item)
        self.limited = sorted(full)
        return out

    def _lease(
        self,
        rec: TaskRecord,
        token: str,
        worker_id: str,
        until: float,
        *,
        now: float,
        standby_of: tuple[str, str] | None = None,
    ) -> ClaimedTask:
        rec.task = _replace(rec.task, status=TaskStatus.RUNNING, attempt=rec.task.attempt + 1)
        rec.token, rec.worker_id, rec.lease_expires_at = token, worker_id, until
        rec.standby_of = standby_of
        self._save(rec, now)
        return ClaimedTask(task=rec.task, token=token, lease_expires_at=until, worker_id=worker_id)

    def claim_standby(
        self,
        queues: Sequence[str],
        worker_id: str,
        behind: tuple[str, str],
        lease: float,
        now: float,
    ) -> ClaimedTask | None:
        """The next ready task of the key of ``behind`` (the id and token of a running
        claim under a cap without a rate), leased as its standby: it takes that claim's
        slot once its run ends. None when ``behind`` no longer runs under that token,
        already has a live standby, or no task of its key is ready in ``queues``."""
        self.reclaim_expired(now)
        self._promote(now)
        b = self._leased(*behind)
        spec = limit_of(b.task) if b is not None else None
        if (
            b is None
            or spec is None
            or spec.max_concurrency is None
            or spec.rate is not None
            or not lease_live(b, now)
        ):
            return None
        for tid in self.limits.by_key.get(spec.key, ()):
            r = self.recs.get(tid)
            if (
                r is not None
                and r.standby_of == behind
                and r.task.status is TaskStatus.RUNNING
                and lease_live(r, now)
            ):
                return None  # one standby per claim
        heads = [
            h
            for q in dict.fromkeys(queues)
            if q not in self.paused
            and (h := self._first(self._lanes.get((q, spec.key)), now, set())) is not None
        ]
        if not heads:
            return None
        best = self.recs[min(heads)[1]]
        return self._lease(best, new_id(), worker_id, now + lease, now=now, standby_of=behind)

    def limit_info(self, now: float) -> list[LimitInfo]:
        """Every limit key's running count and remaining rate budget."""
        return self.limits.info(self.recs, now)

    def _leased(self, task_id: str, token: str) -> TaskRecord | None:
        rec = self.recs.get(task_id)
        if rec is None or rec.token != token or rec.task.status is not TaskStatus.RUNNING:
            return None
        return rec

    def renew(self, leases: Sequence[LeaseRef], lease: float, now: float) -> list[str]:
        lost: list[str] = []
        for ref in leases:
            rec = self._leased(ref.task_id, ref.token)
            if rec is None:
                lost.append(ref.task_id)
                continue
            rec.lease_expires_at = now + lease
            self._save(rec, now)
        return lost

    def complete(
        self, completions: Sequence[Completion], policy: DependencyPolicy, now: float
    ) -> CompletionReport:
        report = CompletionReport()
        finished: list[tuple[str, TaskStatus]] = []
        for c in completions:
            rec = self._leased(c.task_id, c.token)
            if rec is None or not c.status.is_terminal:
                report.stale.append(c.task_id)
                continue
            self._finish(rec, c.status, now)
            report.done.append(c.task_id)
            finished.append((c.task_id, c.status))
        self._resolve(finished, policy, now, report)
        return report

    def _finish(self, rec: TaskRecord, status: TaskStatus, now: float) -> None:
        rec.task = _replace(rec.task, status=status)
        rec.token = rec.lease_expires_at = None
        rec.finished_at = now
        self._save(rec, now)

    def _resolve(
        self,
        finished: list[tuple[str, TaskStatus]],
        policy: DependencyPolicy,
        now: float,
        report: CompletionReport,
    ) -> None:
        """Release or cancel (transitively) the dependents of tasks that just ended."""
        todo = list(finished)
        while todo:
            tid, status = todo.pop()
            for child_id in sorted(self._dependents.pop(tid, ())):
                rec = self.recs.get(child_id)
                if rec is None or rec.task.status is not TaskStatus.PENDING or rec.released:
                    continue
                if status is TaskStatus.SUCCESS or rec.task.run_if is not None:
                    if self._deps_met(rec):
                        self._save(rec, now)
                        report.released.append(child_id)
                elif policy == "cancel":
                    self._finish(rec, TaskStatus.CANCELLED, now)
                    report.cancelled.append(rec.task)
                    todo.append((child_id, TaskStatus.CANCELLED))
                else:
                    rec.released = True
                    self._save(rec, now)
                    report.released.append(child_id)

    def retry(self, requests: Sequence[RetryRequest], now: float) -> list[str]:
        stale: list[str] = []
        for r in requests:
            rec = self._leased(r.task_id, r.token)
            if rec is None:
                stale.append(r.task_id)
                continue
            rec.task = _replace(rec.task, status=TaskStatus.PENDING, eta=r.eta)
            rec.token = rec.worker_id = rec.lease_expires_at = None
            self._save(rec, now)
        return stale

    def release(
        self, leases: Sequence[LeaseRef | RetryRequest], now: float, *, eta: bool = False
    ) -> list[str]:
        """Hand leases back with the attempt given back (``eta``: and the requests' etas)."""
        stale: list[str] = []
        for ref in leases:
            rec = self._leased(ref.task_id, ref.token)
            if rec is None:
                stale.append(ref.task_id)
                continue
            t = rec.task
            if eta and isinstance(ref, RetryRequest):
                t = _replace(t, eta=ref.eta)
            rec.task = _replace(t, status=TaskStatus.PENDING, attempt=max(0, t.attempt - 1))
            rec.token = rec.worker_id = rec.lease_expires_at = rec.standby_of = None
            self._save(rec, now)
        return stale

    def cancel(
        self, task_ids: Sequence[str], policy: DependencyPolicy, now: float
    ) -> CompletionReport:
        report = CompletionReport()
        finished: list[tuple[str, TaskStatus]] = []
        for tid in task_ids:
            rec = self.recs.get(tid)
            if rec is None or rec.task.status.is_terminal:
                continue
            self._finish(rec, TaskStatus.CANCELLED, now)
            report.done.append(tid)
            finished.append((tid, TaskStatus.CANCELLED))
        self._resolve(finished, policy, now, report)
        return report

    def reclaim_expired(self, now: float) -> list[str]:
        out: list[str] = []
        leases = self._leases
        while leases and leases[0][0] <= now:
            _, tid = heapq.heappop(leases)
            rec = self.recs.get(tid)
            if (
                rec is None
                or rec.task.status is not TaskStatus.RUNNING
                or rec.lease_expires_at is None
                or rec.lease_expires_at > now
            ):
                continue
            t = rec.task
            if rec.standby_of is not None and not rec.spared:
                # It may never have started: its worker died holding it. Spared once,
                # so a task that kills its worker on each run still uses up attempts.
                t = _replace(t, attempt=max(0, t.attempt - 1))
            rec.spared = rec.spared or rec.standby_of is not None
            rec.task = _replace(t, status=TaskStatus.PENDING)
            rec.token = rec.worker_id = rec.lease_expires_at = rec.standby_of = None
            self._save(rec, now)
            out.append(tid)
        return out

    def expire(self, policy: DependencyPolicy, now: float) -> CompletionReport:
        report = CompletionReport()
        finished: list[tuple[str, TaskStatus]] = []
        ttl = self._ttl
        while ttl and ttl[0][0] <= now:
            _, tid = heapq.heappop(ttl)
            rec = self.recs.get(tid)
            t = rec.task if rec is not None else None
            if rec is None or t is None or t.status is not TaskStatus.PENDING:
                continue
            if t.expires_at is None or t.expires_at > now:
                continue
            self._finish(rec, TaskStatus.EXPIRED, now)
            report.done.append(tid)
            finished.append((tid, TaskStatus.EXPIRED))
        self._resolve(finished, policy, now, report)
        return report

    def get(self, task_ids: Sequence[str]) -> list[Task | None]:
        return [r.task if (r := self.recs.get(i)) is not None else None for i in task_ids]

    def select(self, queue: str | None, status: TaskStatus | None) -> Iterable[Task]:
        for rec in self.recs.values():
            t = rec.task
            if (queue is None or t.queue == queue) and (status is None or t.status is status):
                yield t

    def list_tasks(
        self, queue: str | None, status: TaskStatus | None, limit: int, offset: int
    ) -> list[Task]:
        found = sorted(self.select(queue, status), key=lambda t: t.id)
        return found[offset : offset + limit]

    def counts(self) -> dict[tuple[str, TaskStatus], int]:
        out: dict[tuple[str, TaskStatus], int] = {}
        for rec in self.recs.values():
            k = (rec.task.queue, rec.task.status)
            out[k] = out.get(k, 0) + 1
        return out

    def requeue(self, task_ids: Sequence[str], now: float) -> list[str]:
        out: list[str] = []
        for tid in task_ids:
            rec = self.recs.get(tid)
            if rec is None or rec.task.status is not TaskStatus.ERROR or tid in out:
                continue
            rec.task = _replace(rec.task, status=TaskStatus.PENDING, attempt=0, eta=None)
            rec.token = rec.worker_id = rec.lease_expires_at = rec.finished_at = None
            self._save(rec, now)
            out.append(tid)
        return out

    def purge(self, finished_before: float, status: TaskStatus | None = None) -> int:
        doomed = [
            tid
            for tid, r in self.recs.items()
            if r.task.status in TERMINAL_STATUSES
            and (status is None or r.task.status is status)
            and r.finished_at is not None
            and r.finished_at < finished_before
        ]
        for tid in doomed:
            self.delete_record(tid)
            self._dependents.pop(tid, None)
            self.deleted.add(tid)
            self.dirty.discard(tid)
        return len(doomed)

    # -- paused queues -------------------------------------------------------------

    def pause_queue(self, queue: str) -> bool:
        if queue in self.paused:
            return False
        self.paused.add(queue)
        self.paused_dirty = True
        return True

    def resume_queue(self, queue: str) -> bool:
        if queue not in self.paused:
            return False
        self.paused.discard(queue)
        self.paused_dirty = True
        return True

    # -- schedules -----------------------------------------------------------------

    def put_schedule(self, schedule: Schedule) -> None:
        self.schedules[schedule.id] = schedule
        self.dirty_schedules.add(schedule.id)

    def delete_schedule(self, schedule_id: str) -> bool:
        if self.schedules.pop(schedule_id, None) is None:
            return False
        self.deleted_schedules.add(schedule_id)
        self.dirty_schedules.discard(schedule_id)
        return True

    def list_schedules(self, state: ScheduleState | None) -> list[Schedule]:
        found = [s for s in self.schedules.values() if state is None or s.state is state]
        return sorted(found, key=lambda s: s.id)

    def claim_due(self, now: float, limit: int) -> list[ScheduleRun]:
        due = sorted(
            (s for s in self.schedules.values() if s.is_due(now)),
            key=lambda s: (s.next_run_at, s.id),
        )
        runs: list[ScheduleRun] = []
        for s in due:
            if len(runs) >= limit:
                break
            advanced, fire = s.advance(now)
            self.put_schedule(advanced)
            if fire:
                assert s.next_run_at is not None
                runs.append(ScheduleRun(schedule=advanced, due=s.next_run_at))
        return runs
