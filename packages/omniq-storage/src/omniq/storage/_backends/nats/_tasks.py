"""The task queue of the NATS JetStream backend (see ``_backend`` for the layout).

A task's record in the ``NS_TASKS`` KV bucket is the truth; each change is a write
checked against the revision it was computed from, so racing claimers, completers and
dependency resolvers serialize inside JetStream. A ready task also has a message on
``NS.work.<queue>.<priority>`` naming its ready generation ``gen``; ``claim`` pulls the
highest priority subjects first, turns the message into a lease by a revision-checked
write and acks it (a message whose generation is no longer current is dropped).
Leases live in the record (per-claim length, fencing token); one ``lease`` timer per
claim is nak'ed with a delay until the lease can have expired, which is how
``reclaim_expired`` finds expired leases without scanning. Delayed tasks (eta) and
TTLs use ``eta``/``ttl`` timers the same way.

Crash safety: every change that makes a task ready writes the record, then publishes
its message; a *guard* (a lease timer published before the write: the claim's own
lease timer, or one per enqueue batch) re-announces a task it finds pending without
a claim, and re-checks a blocked one (re-armed while it stays blocked), so no single
crash point leaves a task unclaimable (docs/storage.md, "crash points").
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import msgspec

from omniq.models import (
    ClaimedTask,
    LimitInfo,
    LimitSpec,
    Task,
    TaskResult,
    TaskStatus,
    limit_of,
    new_id,
    now,
)
from omniq.storage._corrupt import Corrupt, corrupt_result, log, stand_in
from omniq.storage._interfaces import (
    CompletionReport,
    DependencyPolicy,
    ResultRecord,
    ResultStorage,
    TaskQueueStorage,
)
from omniq.storage._limits import chunks
from omniq.storage._remote import EngineStore, claimed

from . import _deps
from ._conn import api_answer, api_request, kv_puts, token
from ._engine import NatsEngine
from ._flow import admit, limit_infos, register
from ._paused import KEY as PAUSED_KEY
from ._paused import paused_names, read_paused
from ._records import (
    FAILED,
    CorruptRec,
    Rec,
    Work,
    any_dec,
    cascaded,
    claim_fn,
    consumer_of,
    decode_rec,
    enc,
    finished,
    pending,
    prio_of,
    prio_token,
    rec_dec,
    work_dec,
)
from ._unique import replace_holder

if TYPE_CHECKING:
    from nats.aio.msg import Msg

__all__ = ["QueueCore"]

_replace = msgspec.structs.replace
_list = list
LIMIT_SCAN = 200
"""How many flow-limited tasks one claim may hold back before it stops pulling."""
CAP_HELD = 0.05
"""The redelivery delay of a task held back by its key's concurrency cap."""
CAP_SOON = 0.005
"""The redelivery delay of the first tasks of a key that one claim held back by its
concurrency cap (as many as the cap): a slot freed elsewhere finds them ready again at
once, while the rest of the key's backlog waits out the longer delay."""
RATE_SPREAD_MAX = 10.0
"""The most seconds a rate-held task's redelivery is spread past its key's budget."""
RATE_RETRY = 0.005
"""The pause a claim asks for when it pulls nothing after the time the rate-held work
it remembers was due back (its messages are on their way)."""
HELD_KEEP = 16
"""Most held-back messages one claim remembers per queue list."""
HELD_MAX_AGE = 1.0
"""Seconds the held-back messages a claim remembered stay candidates."""


class QueueCore(EngineStore[NatsEngine], TaskQueueStorage):
    """Records, enqueue, claim and dependency resolution; lease ends, sweeps, reads and
    waits are in ``_queue.NatsTaskQueue``."""

    guard_delay = 15.0
    """Seconds after an enqueue before its guard re-announces tasks still pending."""
    blocked_recheck = 60.0
    """Seconds between a blocked task's guard re-checks of its dependencies."""

    results: ResultStorage | None = None
    """Where a quarantined record's result goes (the backend's own result store)."""

    def __init__(self, be: NatsEngine) -> None:
        super().__init__(be)
        self._leases: dict[tuple[str, str], tuple[int, Rec]] = {}
        self._waiters_seen = False
        self._woken: dict[tuple[str, ...], list[tuple[Work, Rec]]] = {}
        """Per queue list, the leasable work messages that reached its last wait
        (``_direct``), for the claim after it."""
        self._handed: dict[str, dict[str, str]] = {}
        """Per worker, task id -> lease token of the tasks ``wait_for_push`` leased to
        it that it has not renewed yet (``close_inbox`` gives those back)."""
        self._taken: dict[str, int] = {}
        """Task id -> generation of the tasks leased from such messages: the pull that
        later brings a message of that generation drops it unread."""
        self._held: dict[tuple[str, ...], tuple[float, list[tuple[Work, Rec]]]] = {}
        """Per queue list, when and which messages the last claim that held tasks back
        by their concurrency cap held first (``_held``: the claim for freed slots)."""
        self._dues: list[float | None] = []
        """Per key the last claim held back, when (``time.monotonic()``) its rate has
        budget again (None: held by its cap)."""
        self._rated: dict[tuple[str, ...], tuple[float, list[str]]] = {}
        """Per queue list, until when (``time.monotonic()``) and for which keys the last
        claim that held work back by rates only saw them without budget: until a claim
        takes work again (and for a second past that time at most), one that pulls
        nothing (the held work is out for redelivery until then) reports those keys as
        held with the time left."""
        self._leading: dict[tuple[str, ...], list[str]] = {}
        """Per queue list, the work subjects of the highest priority with ready tasks
        at the last claim that found any (pulled early by the next one)."""
        self.crash_hook: Callable[[str], None] | None = None
        """Test-only: called at each crash point (between a write and its publish)."""

    def _remembered(self, queues: Sequence[str]) -> list[tuple[Work, Rec]]:
        """The held-back messages the last claims on ``queues`` remembered, if recent
        (``_held``)."""
        key = tuple(queues)
        kept = self._held.get(key)
        if not kept or not kept[1] or time.monotonic() - kept[0] > HELD_MAX_AGE:
            self._held.pop(key, None)
            return []
        return kept[1]

    def _crash(self, point: str) -> None:
        if self.crash_hook is not None:
            self.crash_hook(point)

    def _guard_msg(
        self, ids: Sequence[str], delay: float, policy: DependencyPolicy
    ) -> tuple[str, bytes, None]:
        body = [new_id(), now() + delay, list(ids), policy]
        return f"{self._be.ns}.timer.lease", enc.encode(body), None

    # -- primitives ----------------------------------------------------------------

    async def _get(self, task_id: str) -> tuple[Rec | None, int]:
        """The record and its revision; ``CorruptRec`` if it does not decode."""
        raw, rev = await self._be.js.kv_get(self._be.tasks_bucket, token(task_id))
        return (None if raw is None else decode_rec(task_id, raw, rev)), rev

    async def _cas(self, rec: Rec, rev: int) -> int | None:
        key = token(rec.task.id)
        return await self._be.js.kv_put(self._be.tasks_bucket, key, enc.encode(rec), rev)

    def _remember(self, rec: Rec, rev: int) -> None:
        if rec.token is None:
            return
        if len(self._leases) > 200_000:
            for k in list(self._leases)[:50_000]:
                del self._leases[k]
        self._leases[(rec.task.id, rec.token)] = (rev, rec)

    def _ready_msg(
        self, rec: Rec, rev: int, due: bool = False
    ) -> tuple[str, bytes, dict[str, str]]:
        """The message announcing a ready task: work, or an eta timer while delayed."""
        t = rec.task
        if not due and t.eta is not None and t.eta > now():
            body = enc.encode([t.id, rec.gen, t.eta])
            return f"{self._be.ns}.timer.eta", body, {"Nats-Msg-Id": f"e:{t.id}:{rec.gen}"}
        subject = f"{self._be.ns}.work.{token(t.queue)}.{prio_token(t.priority)}"
        body = enc.encode(Work(t.id, rec.gen, rev, enc.encode(rec)))
        return subject, body, {"Nats-Msg-Id": f"w:{t.id}:{rec.gen}"}

    async def _ready(self, rec: Rec, rev: int, *, due: bool = False) -> None:
        await self._be.js.publish(*self._ready_msg(rec, rev, due))

    async def _ready_many(self, recs: Sequence[tuple[Rec, int]]) -> None:
        if recs:
            await self._be.js.publish_many([self._ready_msg(r, v) for r, v in recs])

    async def _change_many(
        self,
        items: Sequence[tuple[str, Callable[[Rec], Rec | None], tuple[int, Rec] | None]],
        corrupt: list[CorruptRec] | None = None,
        lead: Sequence[tuple[str, bytes, dict[str, str] | None]] = (),
        *,
        retry: bool = True,
        trail: Sequence[tuple[str, bytes, dict[str, str] | None]] = (),
        trailed: list[int | None] | None = None,
        stored_first: bool = False,
    ) -> list[tuple[Rec, Rec, int] | None]:
        """``_change`` for many tasks: one pipelined batch of writes for those with a
        known revision (hint), the usual read-and-retry for the rest and for conflicts.
        With ``corrupt``, a record that does not decode is listed there (its change is
        None) instead of failing the batch.

        ``lead``: publishes that must be stored whenever a write is (a claim's lease
        timer, a completion's results). They go in the same batch, ahead of the writes
        on the connection, so a client dying mid-batch cannot leave a write without
        them; one the server refuses is published again on its own before any
        slow-path write, and if that fails too the batch's writes are undone
        (``_lead_lost``). In a cluster the lead is acknowledged before the writes are
        sent (``JS.publish_led``): another stream's leader would store them even while
        the lead's stream has none. ``retry=False``: a change whose hint is refused or
        out of date is not re-read (its answer is None). ``trail``: publishes sent right
        behind the hinted writes in their batch (none when there is none), their answers
        appended to ``trailed``; nothing is undone when one fails. ``stored_first``: the
        writes are sent only once the lead is stored, on one server too
        (``JS.publish_led``)."""
        out: list[tuple[Rec, Rec, int] | None] = [None] * len(items)
        slow: list[int] = []
        fast: list[tuple[int, Rec, Rec, int]] = []
        for i, (_, fn, hint) in enumerate(items):
            new = None if hint is None else fn(hint[1])
            if hint is None or new is None:
                slow.append(i)
            else:
                fast.append((i, hint[1], new, hint[0]))
        js = self._be.js
        if fast or lead:
            tail = trail if fast else ()
            lead_ok, revs = await js.publish_led(
                lead,
                [
                    *kv_puts(
                        self._be.tasks_bucket,
                        [(token(new.task.id), enc.encode(new), rev) for _, _, new, rev in fast],
                    ),
                    *tail,
                ],
                stored_first=stored_first,
            )
            if tail:
                revs, tailed = revs[: len(fast)], revs[len(fast) :]
                if trailed is not None:
                    trailed.extend(tailed)
            for (i, old, new, _), r in zip(fast, revs, strict=True):
                if r is None:
                    slow.append(i)
                else:
                    out[i] = (old, new, r)
            if not lead_ok:
                try:
                    await js.publish_many(lead)
                except BaseException:
                    await self._lead_lost([r for r in out if r is not None])
                    raise
        if slow and retry:
            res = await asyncio.gather(
                *(self._change(items[i][0], items[i][1]) for i in slow),
                return_exceptions=corrupt is not None,
            )
            for i, done in zip(slow, res, strict=True):
                if isinstance(done, CorruptRec) and corrupt is not None:
                    corrupt.append(done)
                elif isinstance(done, BaseException):
                    raise done
                else:
                    out[i] = done
        return out

    async def _change(
        self, task_id: str, fn: Callable[[Rec], Rec | None], hint: tuple[int, Rec] | None = None
    ) -> tuple[Rec, Rec, int] | None:
        """Apply ``fn`` to the current record with a revision-checked write, re-reading on
        conflict. ``fn`` returns None to refuse. Returns (old, new, new revision)."""
        while True:
            if hint is not None:
                rev, rec = hint
                hint = None
            else:
                got, rev = await self._get(task_id)
                if got is None:
                    return None
                rec = got
            new = fn(rec)
            if new is None:
                return None
            new_rev = await self._cas(new, rev)
            if new_rev is not None:
                return rec, new, new_rev

    async def _lead_lost(self, done: Sequence[tuple[Rec, Rec, int]]) -> None:
        """A batch's lead could not be stored: put back each record its writes replaced
        (checked against the revision written, so a later change stands), best effort;
        the caller raises the lead's error. An undone claim's work message is not acked
        and comes back after the ack wait."""
        with contextlib.suppress(Exception):
            await self._be.js.kv_put_many(
                self._be.tasks_bucket,
                [(token(old.task.id), enc.encode(old), rev) for old, _, rev in done],
            )

    def _leased(self, token: str, change: Callable[[Rec], Rec]) -> Callable[[Rec], Rec | None]:
        def fn(rec: Rec) -> Rec | None:
            if rec.token != token or rec.task.status is not TaskStatus.RUNNING:
                return None
            return change(rec)

        return fn

    # -- enqueue -------------------------------------------------------------------

    enqueue_chunk = 1000
    """Most tasks one enqueue round handles: its guard timer lists their ids in one
    message, which must stay under the server's ``max_payload``."""
    enqueue_chunk_bytes = 4 << 20
    """Most envelope bytes one enqueue round sends before awaiting its acks."""

    async def enqueue(
        self,
        tasks: Sequence[Task],
        *,
        dependency_policy: DependencyPolicy = "cancel",
        record: ResultRecord | None = None,
    ) -> list[Task]:
        """``enqueue``; with ``record`` (``enqueue_with_results``), the record write of a
        task stored already cancelled holds its result (``Rec.result``, which the result
        store reads until its own copy exists) when the results live in this backend,
        copied into the result store right after; else stored right after."""
        if not tasks:
            return []
        self.payload_limit.check_tasks(tasks)
        own = record if record is not None and record.result_store is self.results else None
        born: list[TaskResult] = []
        specs = {s.key: s for t in tasks if (s := limit_of(t)) is not None}
        if specs:
            await self._call(lambda: register(self._be, list(specs.values())))
        out: list[Task] = []
        sizes = [self.payload_limit.task_size(t) for t in tasks]
        for a, b in chunks(
            tasks, sizes, max_count=self.enqueue_chunk, max_bytes=self.enqueue_chunk_bytes
        ):
            out += await self._enqueue_chunk(tasks[a:b], dependency_policy, own, born)
        if born and self.results is not None:
            await self.results.put(born)  # wakes their waiters
        elif record is not None and own is None:
            await self.record_born_cancelled(tasks, out, record)
        return out

    async def enqueue_with_results(
        self,
        tasks: Sequence[Task],
        record: ResultRecord,
        *,
        dependency_policy: DependencyPolicy = "cancel",
    ) -> list[Task]:
        return await self.enqueue(tasks, dependency_policy=dependency_policy, record=record)

    async def _enqueue_chunk(
        self,
        tasks: Sequence[Task],
        dependency_policy: DependencyPolicy,
        own: ResultRecord | None = None,
        born: list[TaskResult] | None = None,
    ) -> list[Task]:
        """One round of ``enqueue``: its own guard and TTL timers, then the records."""
        out: list[Task | None] = [None] * len(tasks)
        ttl = [[t.id, t.expires_at] for t in tasks if t.expires_at is not None]
        ids = [t.id for t in tasks]

        async def one(i: int) -> None:
            out[i] = await self._enqueue_one(tasks[i], dependency_policy, own, born)

        async def run() -> None:
            # Guard and TTL timers lead: whatever write follows, a timer covers it.
            first = [self._guard_msg(ids, self.guard_delay, dependency_policy)]
            if ttl:
                first.append((f"{self._be.ns}.timer.ttl", enc.encode(ttl), None))
            plain = [i for i, t in enumerate(tasks) if not t.depends_on and t.key is None]
            slow, waiters = await self._enqueue_plain(
                tasks, plain, out, lead=first, last=len(plain) == len(tasks)
            )
            await asyncio.gather(*(one(i) for i in slow))
            for i, t in enumerate(tasks):
                if t.depends_on or (t.key is not None and i not in slow):
                    await one(i)
            if waiters is False and not slow:
                return  # read after every write of this round: no task ever waited
            await _deps.adopt_waiters(self, ids, dependency_policy)

        await self._call(run)
        return [t for t in out if t is not None]

    async def _enqueue_plain(
        self,
        tasks: Sequence[Task],
        idx: Sequence[int],
        out: list[Task | None],
        *,
        lead: Sequence[tuple[str, bytes, dict[str, str] | None]],
        last: bool,
    ) -> tuple[list[int], bool | None]:
        """Create the records of tasks without key or dependencies in one batch (a create
        fails if the id exists) and announce them; returns the indexes left to the slow
        path, and (``last``: no other write of the round follows) whether a dependent
        ever waited for an id not enqueued yet (None: not read).

        ``lead`` (the round's guard and TTL timers) goes in the creates' batch, ahead of
        them on the connection (in a cluster, acknowledged before them), so a client
        dying mid-batch cannot leave a record without its guard; a lead the server
        refuses is published again on its own before the records are announced. The
        waiters flag is read with the announcements, after the creates
        (``_deps.adopt_waiters``)."""
        recs = []
        for i in idx:
            t = tasks[i]
            if t.status is not TaskStatus.PENDING:
                t = _replace(t, status=TaskStatus.PENDING)
            recs.append(Rec(t))
        js = self._be.js
        lead_ok, revs = await js.publish_led(
            lead,
            kv_puts(self._be.tasks_bucket, [(token(r.task.id), enc.encode(r), 0) for r in recs]),
        )
        if not lead_ok:
            await js.publish_many(lead)
        slow: list[int] = []
        ready: list[tuple[Rec, int]] = []
        for i, rec, rev in zip(idx, recs, revs, strict=True):
            if rev is None:
                slow.append(i)
                continue
            ready.append((rec, rev))
            out[i] = rec.task
        if not recs:
            return slow, None
        self._crash("enqueue")
        if not (last and not slow and not self._waiters_seen):
            await self._ready_many(ready)
            return slow, None
        _, [(flag, _)] = await js.publish_and_get(
            [self._ready_msg(r, v) for r, v in ready], self._be.keys_bucket, ["waiters"]
        )
        if flag is not None:
            self._waiters_seen = True
        return slow, flag is not None

    async def _enqueue_one(
        self,
        task: Task,
        policy: DependencyPolicy,
        own: ResultRecord | None = None,
        born: list[TaskResult] | None = None,
    ) -> Task:
        existing, erev = await self._get(task.id)
        if existing is not None:
            if existing.task.status is TaskStatus.PENDING and not existing.blocked:
                # Re-announce (de-duplicated by Nats-Msg-Id; a duplicate is dropped by the
                # generation check): heals an enqueue that died before its publish.
                await self._ready(existing, erev)
            return existing.task
        t = task if task.status is TaskStatus.PENDING else _replace(task, status=TaskStatus.PENDING)
        rec = Rec(t)
        pending_deps: list[str] = []
        if t.depends_on:
            deps = await asyncio.gather(*(self._get(d) for d in t.depends_on))
            failed = any(d is not None and d.task.status in FAILED for d, _ in deps)
            if t.run_if is not None:  # conditional: waits for the live ones, whatever
                pending_deps = [
                    dep
                    for dep, (d, _) in zip(t.depends_on, deps, strict=True)
                    if d is None or not d.task.status.is_terminal
                ]
                rec.blocked = bool(pending_deps)
            elif failed and policy == "cancel":
                rec.task = _replace(t, status=TaskStatus.CANCELLED)
                rec.finished = now()
                if own is not None:  # written with the record
                    rec.result = own.result(
                        rec.task, TaskStatus.CANCELLED, rec.finished, cascaded=True
                    )
            elif failed:
                rec.released = True
            else:
                pending_deps = [
                    dep
                    for dep, (d, _) in zip(t.depends_on, deps, strict=True)
                    if d is None or d.task.status is not TaskStatus.SUCCESS
                ]
                rec.blocked = bool(pending_deps)
        rev = await self._cas(rec, 0)
        if rev is None:  # raced with another enqueue, or a purged id's tombstone
            got, trev = await self._get(t.id)
            if got is not None:
                return got.task
            rev = await self._cas(rec, trev)
            if rev is None:
                got, _ = await self._get(t.id)
                return got.task if got is not None else t
        if t.key is not None:
            holder = await self._take_key(t.key, t.id)
            if holder is not None:
                await self._be.js.kv_purge(self._be.tasks_bucket, token(t.id), rev)
                return await replace_holder(t, holder, self._change, self._ready)
        if rec.blocked:
            report = CompletionReport()
            for dep in pending_deps:
                await _deps.depend(self, dep, t.id)
            await self._check_child(t.id, policy, report)
            got, rev = await self._get(t.id)
            if got is not None:
                rec = got
        elif rec.task.status is TaskStatus.PENDING:
            self._crash("enqueue")
            await self._ready(rec, rev)
        elif rec.result is not None and born is not None:
            self._crash("ended")  # the record holds the result already
            born.append(rec.result)
        return rec.task

    async def _take_key(self, key: str, task_id: str) -> Task | None:
        """Bind an idempotency key to ``task_id``; returns the task holding it instead
        (live, or inside its ``unique_for`` window)."""
        kt = "k" + hashlib.sha1(key.encode()).hexdigest()
        js, bucket = self._be.js, self._be.keys_bucket
        while True:
            val, krev = await js.kv_get(bucket, kt)
            if val is not None:
                holder_id = val.decode()
                if holder_id == task_id:
                    return None
                holder, _ = await self._get(holder_id)
                if holder is not None and holder.task.holds_key():  # live or in its window
                    return holder.task
            if await js.kv_put(bucket, kt, task_id.encode(), krev) is not None:
                return None

    # -- claim ---------------------------------------------------------------------

    async def _subjects(self) -> dict[str, int]:
        return (await self._probe())[0]

    async def _probe(
        self, reads: Sequence[tuple[str, Sequence[str]]] = ()
    ) -> tuple[dict[str, int], frozenset[str], list[list[tuple[bytes | None, int]]]]:
        """The work stream's subjects with their message counts, the paused queues
        (a direct get, not the leader's: a claim fences them after its writes) and, per
        (bucket, keys) of ``reads``, ``kv_get_many``'s answers: one batch of requests,
        one round trip."""
        be, js = self._be, self._be.js
        reqs = [api_request(f"STREAM.INFO.{be.work_stream}", {"subjects_filter": f"{be.ns}.>"})]
        parts = []
        for bucket, keys in [(be.queues_bucket, [PAUSED_KEY]), *reads]:
            more, parse = js.kv_get_requests(bucket, keys)
            parts.append((len(reqs), len(more), parse))
            reqs += more
        msgs = await js.many(reqs)
        subjects: dict[str, int] = api_answer(msgs[0])["state"].get("subjects") or {}
        got = [parse(msgs[i : i + n]) for i, n, parse in parts]
        return subjects, paused_names(got[0][0][0]), got[1:]

    def _candidates(self, subjects: dict[str, int], queues: Sequence[str]) -> list[tuple[int, str]]:
        prefix = f"{self._be.ns}.work."
        wanted = {token(q) for q in queues}
        out = []
        for subj, n in subjects.items():
            if n and subj.startswith(prefix):
                qtok, _, ptok = subj[len(prefix) :].rpartition(".")
                if qtok in wanted:
                    out.append((prio_of(ptok), subj))
        out.sort(key=lambda x: -x[0])
        return out

    async def claim(
        self, queues: Sequence[str], worker_id: str, *, limit: int = 1, lease: float = 30.0
    ) -> list[ClaimedTask]:
        if limit <= 0 or not queues:
            return []
        self.admitted = None
        woken = self._woken.pop(tuple(queues), None)
        if woken:
            out = await self._call(lambda: self._claim_woken(woken, worker_id, limit, lease))
            if out:
                return out
        return await self._call(lambda: self._claim(queues, worker_id, limit, lease))

    async def _claim_woken(
        self, woken: list[tuple[Work, Rec]], worker_id: str, limit: int, lease: float
    ) -> list[ClaimedTask]:
        """Lease the tasks whose work messages woke this process (``_direct``); the
        queue class binds it, so this module does not import ``_direct``."""
        raise NotImplementedError

    async def _claim(
        self, queues: Sequence[str], worker_id: str, limit: int, lease: float
    ) -> list[ClaimedTask]:
        be, js = self._be, self._be.js
        # The pull from the subjects that led the last claim on these queues goes with
        # the reads that decide what to pull: when they still lead, its messages are
        # this claim's first pull; otherwise they are handed back (nak) unclaimed.
        key = tuple(queues)
        guess = self._leading.get(key, [])
        (subjects, paused, _), guessed = await asyncio.gather(
            self._probe(),
            asyncio.gather(*(js.pull(be.work_stream, consumer_of(s), limit) for s in guess)),
        )
        first: list[list[Msg]] | None = None
        try:
            live = [q for q in queues if q not in paused]
            if not live:
                return []
            if subjects.get(f"{be.ns}.timer.eta") and await self.promote():
                subjects = await self._subjects()
                guess = []  # promoted work may lead now, or sort before what was pulled
            groups: dict[int, list[str]] = {}
            for p, subj in self._candidates(subjects, live):
                groups.setdefault(p, []).append(subj)
            ordered = [subjs for _, subjs in sorted(groups.items(), key=lambda kv: -kv[0])]
            if ordered:  # an idle worker's claims keep the guess for the next task
                if len(self._leading) > 1000:
                    self._leading.clear()
                self._leading[key] = ordered[0]
            if guess and ordered and guess == ordered[0] and any(guessed):
                first, guessed = guessed, []
        finally:
            for m in (m for ms in guessed for m in ms):
                await m.nak()
        token, t = new_id(), now()
        until = t + lease
        out: list[ClaimedTask] = []
        corrupt: list[CorruptRec] = []
        queue_of: dict[str, str] = {}
        held = 0
        self.limited = []
        self._dues = []
        self.admitted = None
        full: dict[str, tuple[float | None, int]] = {}
        capped: list[tuple[Work, Rec]] = []
        for subjs in ordered:
            while len(out) < limit and held < LIMIT_SCAN:
                need = limit - len(out)
                if first is not None:
                    pulled, first = first, None
                else:
                    for s in subjs:
                        await be.ensure_consumer(consumer_of(s), s)
                    pulled = await asyncio.gather(
                        *(js.pull(be.work_stream, consumer_of(s), need) for s in subjs)
                    )
                # Every pull short of what it asked for: these subjects are drained now.
                drained = all(len(ms) < need for ms in pulled)
                msgs = [(m, work_dec.decode(m.data)) for ms in pulled for m in ms]
                if self._taken:
                    msgs = await self._drop_taken(msgs)
                if not msgs:
                    if drained:
                        break
                    continue
                msgs.sort(key=lambda mw: mw[1].id)
                for m, _ in msgs[need:]:
                    await m.nak()
                take = msgs[:need]
                n = len(take)
                take = await self._within_limits(take, token, t, full, capped)
                held += n - len(take)
                # Work held back by its limits ends the scan once this claim has some:
                # what it took starts without waiting for the pulls and naks of the
                # held backlog (a rate-limited task must start soon after its start
                # was counted); the work behind comes to the next claim, the held
                # messages being out for redelivery.
                stop = held > 0 and bool(take or out)
                if take:
                    ids = [w.id for _, w in take]
                    items = [
                        (
                            w.id,
                            functools.partial(
                                claim_fn,
                                gen=w.gen,
                                token=token,
                                until=until,
                                worker=worker_id,
                                t=t,
                            ),
                            (w.rev, rec_dec.decode(w.rec)),
                        )
                        for _, w in take
                    ]
                    queue_of.update((i, h[1].task.queue) for i, _, h in items)
                    # The lease timer leads the writes: a claim written without it could
                    # never expire.
                    timer = (f"{be.ns}.timer.lease", enc.encode([token, until, ids]), None)
                    res = await self._change_many(items, corrupt, lead=[timer])
                    self._crash("claim")
                    for m, _ in take:
                        await m.ack()
                    for r in res:
                        if r is not None:
                            self._remember(r[1], r[2])
                            out.append(claimed(r[1].task, token, until, worker_id))
                if drained or (stop and out):
                    break
        if capped:
            if len(self._held) > 1000:
                self._held.clear()
            self._held[key] = (time.monotonic(), capped[:HELD_KEEP])
        elif not out and not self.limited and ordered:
            # Nothing to pull from subjects that hold messages may mean the backlog is
            # out for redelivery after a cap or a rate held it back (a recent claim here
            # held some): the caller paces its next claim as for held work instead of
            # asking again at once; for a rate, until the rate has budget again.
            keys = (limit_of(rec.task) for _, rec in self._remembered(queues))
            self.limited = list(dict.fromkeys(k.key for k in keys if k is not None))
            rated_until = self._rated.get(key)
            mono = time.monotonic()
            left = 0.0 if rated_until is None else rated_until[0] - mono
            if not self.limited and rated_until is not None and left > -1.0:
                # Until then, and briefly after (the held messages come back then).
                self.limited = list(rated_until[1])
                self._dues = [mono + max(RATE_RETRY, left)] * len(self.limited)
        rated = [d for d in self._dues if d is not None]
        due = min(rated) if rated and len(rated) == len(self._dues) else None
        if held and due is not None:
            if len(self._rated) > 1000:
                self._rated.clear()
            self._rated[key] = (due, list(self.limited))
        elif out:
            self._rated.pop(key, None)
        if corrupt:
            await self._quarantine(corrupt, queue_of)
        if out:
            out = await self._fence_paused(out, token)
        # From now, not from the admission: the caller pauses from when it gets this.
        self.limited_wait = None if due is None else max(0.0, due - time.monotonic())
        return out

    async def _drop_taken(self, msgs: list[tuple[Msg, Work]]) -> list[tuple[Msg, Work]]:
        """``msgs`` without (acked) those of tasks this process leased at the same
        generation from the message that woke it (``_direct``)."""
        keep = []
        for m, w in msgs:
            if self._taken.get(w.id) == w.gen:
                del self._taken[w.id]
                await m.ack()
            else:
                keep.append((m, w))
        return keep

    limited: list[str] = []
    """The limit keys the last claim held tasks back for."""
    limited_wait: float | None = None
    """Seconds until the keys the last claim held back by their rate have budget again
    (None: it held some by a concurrency cap, or none)."""
    admitted: float | None = None
    """When the last claim counted its first rate-limited start, as a
    ``time.monotonic()`` value no later than the stamp it stored (None: it counted
    none): the worker's late-start guard runs from there."""

    async def _within_limits(
        self,
        take: list[tuple[Msg, Work]],
        token: str,
        t: float,
        full: dict[str, tuple[float | None, int]],
        capped: list[tuple[Work, Rec]] | None = None,
    ) -> list[tuple[Msg, Work]]:
        """The pulled work whose limits admit it (slots reserved); the rest is nak'ed
        to come back when capacity may have freed: pending, no attempt taken. ``full``
        (per claim) keeps the keys held back so far, so the claim does not ask again
        for them: with when their rate has budget again (``time.monotonic()``) and how
        many of their tasks it held so far (their redeliveries are spread, ``_spread``),
        or, for a key held by its cap, None and how many more of its tasks come back
        soon (``CAP_SOON``; the rest after ``CAP_HELD``). ``capped`` gets the work held
        back by a concurrency cap.

        A key with a rate is admitted at a stamp of its own, taken just before: the
        starts it counts lie as close as they can to the tasks' own starts, and the
        time the claim spent pulling is not part of the worker's late-start guard."""
        groups: dict[str, tuple[LimitSpec, list[tuple[Msg, Work]]]] = {}
        keep: list[tuple[Msg, Work]] = []
        recs: dict[str, Rec] = {}
        for m, w in take:
            try:
                rec = recs[w.id] = rec_dec.decode(w.rec)
                spec = limit_of(rec.task)
            except msgspec.DecodeError:
                spec = None  # the claim below deals with a corrupt record
            if spec is None:
                keep.append((m, w))
            else:
                groups.setdefault(spec.key, (spec, []))[1].append((m, w))
        for key, (spec, items) in groups.items():
            if key in full:
                ok: list[str] = []
            else:
                at, mono = t, 0.0
                if spec.rate is not None:
                    mono = time.monotonic()
                    at = now()
                ok, wait = await admit(self._be, spec, [w.id for _, w in items], token, at)
                if ok and spec.rate is not None and self.admitted is None:
                    self.admitted = mono
            okset = set(ok)
            if len(okset) < len(items) and key not in full:
                self.limited.append(key)
                due = None if wait is None else mono + wait
                self._dues.append(due)
                full[key] = (due, (spec.max_concurrency or 0) if due is None else 0)
            for m, w in items:
                if w.id in okset:
                    keep.append((m, w))
                    continue
                due, n = full[key]
                if due is None:  # held by the cap: ``n`` of them come back soon
                    delay = CAP_HELD
                    if capped is not None and spec.max_concurrency is not None:
                        capped.append((w, recs[w.id]))
                    if n:
                        full[key] = (due, n - 1)
                        delay = CAP_SOON
                else:  # held by the rate: the ``n``-th of them in this claim
                    full[key] = (due, n + 1)
                    delay = max(RATE_RETRY, due - time.monotonic()) + _spread(spec, n)
                await m.nak(delay=delay)
        keep.sort(key=lambda mw: mw[1].id)
        return keep

    async def list_limits(self) -> list[LimitInfo]:
        return await self._call(lambda: limit_infos(self._be, now()))

    async def _fence_paused(self, out: list[ClaimedTask], token: str) -> list[ClaimedTask]:
        """Re-read the paused queues from the stream leader after the lease writes and
        give back, unrun, the tasks of a queue paused since the claim began (``_paused``)."""
        paused, _ = await read_paused(self._be, leader=True)
        held = [c for c in out if c.task.queue in paused]
        if not held:
            return out

        def back(rec: Rec) -> Rec:
            return pending(rec, max(0, rec.task.attempt - 1), rec.task.eta)

        items = [
            (c.task.id, self._leased(token, back), self._leases.pop((c.task.id, token), None))
            for c in held
        ]
        res = await self._change_many(items)
        self._crash("claim")  # the claim's lease timer re-announces them
        await self._ready_many([(r[1], r[2]) for r in res if r is not None])
        return [c for c in out if c.task.queue not in paused]

    async def _quarantine(self, corrupt: Sequence[CorruptRec], queue_of: dict[str, str]) -> None:
        """Replace each corrupt record (at the revision read, so a record rewritten since
        is left alone) with a stand-in ended in ``error``, and store its dead-letter
        result. Its dependents are not named any more; their guards find it failed."""
        t = now()
        bad = [Corrupt(c.task_id, "", str(c), 0, queue_of.get(c.task_id)) for c in corrupt]
        stubs = [
            Rec(stand_in(b.task_id, b.queue, TaskStatus.ERROR, 0, b.reason), finished=t)
            for b in bad
        ]
        revs = await self._be.js.kv_put_many(
            self._be.tasks_bucket,
            [(token(s.task.id), enc.encode(s), c.rev) for s, c in zip(stubs, corrupt, strict=True)],
        )
        done = [b for b, r in zip(bad, revs, strict=True) if r is not None]
        for b in done:
            log.warning("quarantined corrupt task record %s: %s", b.task_id, b.reason)
        if done and self.results is not None:
            await self.results.put([corrupt_result(b, t) for b in done])

    async def promote(self, msgs: Sequence[Msg] | None = None) -> int:
        """Turn due eta timers into work messages (not-due ones are nak'ed with a delay)."""
        be = self._be
        if msgs is None:
            msgs = await be.js.pull(be.work_stream, "timer-eta", 512)
        n = 0
        for m in msgs:
            task_id, gen, eta = any_dec.decode(m.data)
            left = eta - now()
            if left > 0.001:
                await m.nak(delay=left)
                continue
            rec, rev = await self._get(task_id)
            if rec is not None and rec.task.status is TaskStatus.PENDING and rec.gen == gen:
                await self._ready(rec, rev, due=True)
                n += 1
            await m.ack()
        return n

    # -- dependencies --------------------------------------------------------------

    async def _resolve(
        self,
        ended: _list[tuple[str, TaskStatus, _list[str]]],
        policy: DependencyPolicy,
        report: CompletionReport,
    ) -> None:
        """Release or cancel (transitively) the dependents of tasks that just ended. The
        released ones are announced together at the end (one batch; a crash before it
        leaves them to their guards), so the caller returns as soon as they can run."""
        todo = list(ended)
        released: _list[tuple[Rec, int]] = []
        while todo:
            _, _, children = todo.pop(0)
            for cid in sorted(set(children)):
                cancelled = await self._check_child(cid, policy, report, released)
                if cancelled is not None and cancelled.dependents:
                    todo.append((cid, TaskStatus.CANCELLED, cancelled.dependents))
        await self._ready_many(released)

    async def _check_child(
        self,
        cid: str,
        policy: DependencyPolicy,
        report: CompletionReport,
        released: _list[tuple[Rec, int]] | None = None,
    ) -> Rec | None:
        """Re-evaluate a blocked task from its dependencies' states: release it when all
        succeeded, cancel (returned) or release it when one failed. Idempotent. A
        released task is announced here, or listed in ``released`` to announce."""
        while True:
            rec, rev = await self._get(cid)
            if rec is None or rec.task.status is not TaskStatus.PENDING or not rec.blocked:
                return None
            deps = await asyncio.gather(*(self._get(d) for d in rec.task.depends_on))
            states = [None if d is None else d.task.status for d, _ in deps]
            if rec.task.run_if is not None:  # conditional: released once all ended
                if not all(s is not None and s.is_terminal for s in states):
                    return None
                new = _replace(rec, blocked=False, gen=rec.gen + 1)
            elif any(s in FAILED for s in states):
                if policy == "cancel":
                    new = cascaded(finished(rec, TaskStatus.CANCELLED, now()), deps)
                else:
                    new = _replace(rec, blocked=False, released=True, gen=rec.gen + 1)
            elif all(s is TaskStatus.SUCCESS for s in states):
                new = _replace(rec, blocked=False, gen=rec.gen + 1)
            else:
                return None
            new_rev = await self._cas(new, rev)
            if new_rev is None:
                continue
            if new.task.status is TaskStatus.CANCELLED:
                report.cancelled.append(new.task)
                return new
            report.released.append(cid)
            self._crash("dependency")
            if released is None:
                await self._ready(new, new_rev)
            else:
                released.append((new, new_rev))
            return None


def _spread(spec: LimitSpec, n: int) -> float:
    """How much later than its key's budget the ``n``-th task one claim held back by
    its rate (from 0) is redelivered: the key starts ``burst`` tasks per
    ``burst * window / count`` seconds, so the first two bursts' worth come back when
    the budget does, and each further burst's worth one such step later (at most
    ``RATE_SPREAD_MAX``). Redelivering all of them at once would have every claim
    until then pull and hand back the key's whole held backlog again."""
    rate = spec.rate
    if rate is None:
        return 0.0
    groups = n // rate.burst - 1
    if groups <= 0:
        return 0.0
    return min(RATE_SPREAD_MAX, groups * rate.burst * rate.window / rate.count)
