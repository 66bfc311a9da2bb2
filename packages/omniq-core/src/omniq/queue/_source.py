"""The worker side of the queue: a TaskSource and OutcomeSink over the task store.

Claims come in batches; outcomes are turned into one ``finish`` (results and
completions) and one ``retry`` call per reported batch, and one event batch. Follow-up
callbacks need no call of their own: they were stored with their task, and the store
releases them inside the ``finish`` that ends it (``_workflow``). Policy lives here, not
in the pool: retries with backoff, per-function circuit breakers that defer instead of
failing, poison tasks, results.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import socket
import time
from collections.abc import Callable, Collection, Coroutine, Iterable, Sequence
from typing import Any, Protocol

import anyio
import msgspec

from omniq.config import Settings
from omniq.events import (
    AsyncEventLogger,
    cancelled_event,
    complete_event,
    error_event,
    executing_event,
    expired_event,
    progress_event,
    retry_event,
)
from omniq.models import (
    BackendUnavailableError,
    ClaimedTask,
    ErrorInfo,
    Progress,
    Task,
    TaskEvent,
    TaskResult,
    TaskStatus,
    WorkerCrashedError,
    limit_of,
    new_id,
    now,
)
from omniq.serialization import SerializationManager
from omniq.storage import (
    Completion,
    CompletionReport,
    DependencyPolicy,
    LeaseRef,
    PayloadLimit,
    ProgressUpdate,
    ResultRecord,
    ResultStorage,
    RetryRequest,
    TaskQueueStorage,
)
from omniq.workers import Outcome

from ._breaker import BreakerRegistry, BreakerState, CircuitBreaker
from ._limited import HeldBack
from ._retry import RetryManager
from ._tracing import Tracing
from ._ttl import TTLManager
from ._workflow import prepare, skipped_error

__all__ = ["OutcomeObserver", "QueueCore", "QueueWorkerSource", "default_worker_id"]


class OutcomeObserver(Protocol):
    """Told what a worker source saw (worker metrics implement it): runs that started,
    reported outcomes (with the ids among them that were scheduled for a retry), claims
    handed back, and held tasks the worker let go of without an outcome of its own (a
    lost lease, a ``cancel``)."""

    def started(self, claims: Sequence[ClaimedTask]) -> None: ...

    def reported(self, outcomes: Sequence[Outcome], retried: set[str]) -> None: ...

    def released(self, claims: Sequence[ClaimedTask]) -> None: ...

    def abandoned(self, task_ids: Collection[str]) -> None: ...


class QueueCore(Protocol):
    """What a worker source needs of ``AsyncTaskQueue``: its stores, policies and the
    recording steps shared with the enqueue side."""

    settings: Settings
    tasks: TaskQueueStorage
    results: ResultStorage | None
    events: AsyncEventLogger | None
    retry: RetryManager
    breakers: BreakerRegistry
    dependency_policy: DependencyPolicy
    ttl: TTLManager
    tracer: Tracing | None

    serializer: SerializationManager

    def _log(self, events: Sequence[TaskEvent]) -> None: ...

    def decode(self, result: TaskResult) -> TaskResult: ...

    def result_expiry(self, finished: float) -> float | None: ...

    def result_record(self, reason: str = "cancelled") -> ResultRecord | None: ...

    async def record_cascade(self, report: CompletionReport, *, stored: bool = False) -> None: ...

    async def enqueue_many(self, tasks: Iterable[Task]) -> list[Task]: ...


_log = logging.getLogger("omniq.queue")


def default_worker_id() -> str:
    """``host:pid:short-id``, unique per worker and readable in events."""
    return f"{socket.gethostname()}:{os.getpid()}:{new_id()[-6:]}"


class Claims(list[ClaimedTask]):
    """Claimed tasks with ``since``, ``time.monotonic()`` just before the store was
    asked for them (the pool starts rate-limited tasks only within their rate's guard
    of it)."""

    since: float | None = None


class _Standby:
    """A task claimed ahead to run in a running capped task's slot once that run ends
    (``claim``, None until claimed or when none was), and the job that claims it and
    keeps its lease meanwhile."""

    def __init__(self, behind: ClaimedTask) -> None:
        self.behind = behind
        """The running task whose slot it takes."""
        self.claim: ClaimedTask | None = None
        self.ready = asyncio.Event()
        self.asking = False
        """A claim for it is on its way to the store."""
        self.job: asyncio.Task[None]


class QueueWorkerSource:
    """Implements ``omniq.workers.TaskSource`` and ``OutcomeSink`` for one worker.

    A task claimed while its function's breaker is open is deferred: the store takes it
    back with the claim's attempt given back (``TaskQueueStorage.defer``), so deferrals
    never count as attempts, on any worker. The backend breaker opens after consecutive
    BackendUnavailableErrors: claims then return nothing and ``wait_for_work`` backs off
    until the cool-down ends.
    """

    def __init__(
        self,
        queue: QueueCore,
        queues: Sequence[str],
        *,
        worker_id: str | None = None,
        lease: float | None = None,
        backend_breaker: CircuitBreaker | None = None,
    ) -> None:
        self.queue = queue
        self.queues = list(queues)
        self.worker_id = worker_id or default_worker_id()
        self.lease = lease if lease is not None else queue.settings.lease_seconds
        self.backend_breaker = backend_breaker or CircuitBreaker(threshold=3, cooldown=2.0)
        params = inspect.signature(queue.tasks.finish).parameters.values()
        self._finish_records = any(p.name == "record" or p.kind is p.VAR_KEYWORD for p in params)
        """Whether the store's ``finish`` takes ``record`` (a third-party backend's
        override may predate it): then it stores the cascade's results itself."""
        self.deferred = 0
        self.poisoned = 0
        self.held_back = HeldBack()
        """LIMITED events and the pause while ready work is held back by flow limits."""
        remote = getattr(queue.tasks, "wait_for_limits", None)
        if remote is not None:
            qs = self.queues
            self.held_back.remote = lambda timeout: remote(qs, timeout)
        self.sweep_interval = 1.0
        self._next_sweep = 0.0
        self._sweep_due = False
        self._outstanding: set[str] = set()
        self._settles = 0
        """How many times outcomes settled (a burst claim that overlapped one looks again)."""
        self._settled: anyio.Event | None = None
        self.burst = False
        """Set for burst runs: an empty claim first waits for outcomes still in flight."""
        self.handover = False
        """Take tasks the store hands over already claimed while this worker waits idle
        (``wait_for_push``); whoever sets it calls ``close()`` when the pool ends."""
        self._pushed: list[ClaimedTask] = []
        self.offer: Callable[[list[ClaimedTask]], bool] | None = None
        """The pool's ``offer``: runs handed-over claims at once (set with handover)."""
        self._confirms: set[asyncio.Task[None]] = set()
        self._taking = 0
        """Reports under way that claim for the concurrency slots they freed."""
        self.observer: OutcomeObserver | None = None
        """Told of starts, outcomes and releases (worker metrics)."""
        self._standbys: dict[str, _Standby] = {}
        """Tasks claimed ahead to run in the slots of this worker's running capped tasks
        (by the running task's id), where the store can (``claim_standby``)."""
        self._handed_on: set[str] = set()
        """Ended capped tasks whose standby already started (``run_ended``)."""
        self._claim_standby: Any = getattr(queue.tasks, "claim_standby", None)
        self._held_keys: set[str] = set()
        """The limit keys this worker's last claim held tasks back for."""

    STANDBY_RETRY = 0.005
    STANDBY_RETRY_MAX = 0.05
    """Bounds of the pause between two tries for a running capped task's standby."""

    def _attempt(self, task: Task) -> int:
        return task.attempt

    # -- TaskSource --------------------------------------------------------------------------

    async def claim(self, limit: int) -> list[ClaimedTask]:
        """Claim a batch; defer tasks whose function breaker is open; fail poison tasks.

        In a burst run, when nothing is ready but outcomes of tasks this worker ran are
        still on their way to ``report`` (or were stored while the claim was on its way),
        wait (briefly) for them and claim again: their completion may release dependents
        or follow-ups, which a burst run must not miss.
        """
        if self._pushed:
            pushed, self._pushed = self._pushed[:limit], self._pushed[limit:]
            self._confirm(pushed)
            claims = await self._admit(pushed)
            self._outstanding.update(c.task.id for c in claims)
            return claims
        if self._taking and self.held_back.pause and not self.burst:
            # Capped work is held back and a report of this worker is claiming for the
            # slots it freed: a claim now would find the slots still taken and only
            # contend with that one; the pause ends when the report is done.
            return []
        settles = self._settles
        claims = await self._claim(limit)
        # An outcome stored while this claim was on its way may have released work the
        # claim could not see yet: look again, as for outcomes still in flight.
        if not claims and self.burst and (self._outstanding or self._settles != settles):
            if self._outstanding:
                self._settled = anyio.Event()
                with anyio.move_on_after(2.0):
                    await self._settled.wait()
                self._settled = None
            claims = await self._claim(limit)
        self._outstanding.update(c.task.id for c in claims)
        return claims

    def _settle(self, ids: Iterable[str]) -> None:
        self._settles += 1
        if not (self._standbys or self._handed_on):
            self._outstanding.difference_update(ids)
        else:
            ids = set(ids)
            self._outstanding.difference_update(ids)
            self._handed_on.difference_update(ids)
            # Runs that ended without an outcome (lost lease, cancel): their standbys
            # go back unrun.
            orphans = [sb for i in ids if (sb := self._standbys.pop(i, None)) is not None]
            if orphans:
                self._background(self._drop(orphans))
        if not self._outstanding and self._settled is not None:
            self._settled.set()

    async def _sweep(self, t: float, *, full: bool) -> None:
        self._sweep_due = False
        try:
            if full:
                self._next_sweep = t + self.sweep_interval
                await self.queue.ttl.run_once()
            else:
                await self.queue.ttl.expire()
        except BackendUnavailableError as exc:  # the store logs its outage itself
            _log.debug("TTL sweep skipped: %s", exc)
        except Exception:
            _log.warning("TTL sweep failed", exc_info=True)

    async def _claim(self, limit: int, *, limited: bool = False) -> list[ClaimedTask]:
        if not self.backend_breaker.allow():
            return []
        if self._sweep_due:
            await self._sweep(now(), full=True)
        tasks = self.queue.tasks
        claim = tasks.claim
        if limited:  # for freed slots: a store may claim its limited tasks in one step
            claim = getattr(tasks, "claim_limited", None) or claim
        try:
            since = time.monotonic()
            claims = await claim(self.queues, self.worker_id, limit=limit, lease=self.lease)
        except BackendUnavailableError as exc:  # the store logs its outage itself
            self.backend_breaker.record_failure()
            _log.debug("task store unreachable; backing off: %s", exc)
            return []
        self.backend_breaker.record_success()
        return await self._claimed(claims, since)

    def _counted_since(self, since: float) -> float:
        """``since`` (when the store was asked), narrowed to when the store counted the
        last claim's rate-limited starts, for a store that tells it (``admitted``)."""
        admitted: float | None = getattr(self.queue.tasks, "admitted", None)
        return since if admitted is None else max(since, admitted)

    async def _claimed(self, claims: list[ClaimedTask], since: float) -> list[ClaimedTask]:
        """What every claim's reply goes through: held-back keys and pauses, sweeps,
        breakers and poison tasks; ``since`` is when the store was asked."""
        since = self._counted_since(since)
        held: list[str] = getattr(self.queue.tasks, "limited", None) or []
        if held or self._held_keys:
            self._held_keys = set(held)
        wait: float | None = getattr(self.queue.tasks, "limited_wait", None) if held else None
        self.held_back.claimed(len(claims), bool(held), wait)
        if held:
            self.queue._log(self.held_back.events(held, self.worker_id))
        t = now()
        if not claims:
            # TTL duties ride on the claim loop: expired tasks get their EXPIRED result
            # and event before an idle (or burst) worker reports "nothing to do".
            await self._sweep(t, full=t >= self._next_sweep)
            return claims
        if t >= self._next_sweep:
            # Not now: the claimed tasks start first (the pool dispatches them before
            # it claims again); the next claim call runs the sweep.
            self._sweep_due = True
        out = Claims(await self._admit(claims))
        out.since = since
        return out

    async def _admit(self, claims: list[ClaimedTask]) -> list[ClaimedTask]:
        """The claims to run: breaker-deferred and poison tasks are dealt with here."""
        runnable: list[ClaimedTask] = []
        deferred: list[ClaimedTask] = []
        poison: list[ClaimedTask] = []
        breakers = self.queue.breakers
        for c in claims:
            task = c.task
            if self._attempt(task) > task.max_retries + 1:
                poison.append(c)
            elif not breakers.allow(task.func):
                deferred.append(c)
            else:
                runnable.append(c)
        if deferred:
            await self._defer(deferred)
        if poison:
            await self._poison(poison)
        if any(c.task.run_if or c.task.pass_results for c in runnable):
            runnable, skipped = await prepare(self.queue, runnable)
            if skipped:
                await self._skip(skipped)
        return runnable

    async def _skip(self, claims: Sequence[ClaimedTask]) -> None:
        """Conditional tasks whose dependencies did not end as they run on: cancelled,
        not run (their own dependents resolve as for any cancellation)."""
        t = now()
        await self.report(
            [
                Outcome(
                    claimed=c,
                    status=TaskStatus.CANCELLED,
                    error=skipped_error(c.task),
                    finished_at=t,
                    attempt=self._attempt(c.task),
                    worker_id=self.worker_id,
                )
                for c in claims
            ],
            final=True,
        )

    async def _defer(self, claims: Sequence[ClaimedTask]) -> None:
        breakers = self.queue.breakers
        requests = []
        events: list[TaskEvent] = []
        for c in claims:
            eta = breakers.get(c.task.func).retry_at()
            requests.append(RetryRequest(c.task.id, c.token, eta))
            events.append(
                retry_event(
                    c.task, "circuit open", eta, worker_id=self.worker_id, reason="circuit_open"
                )
            )
        self.deferred += len(claims)
        stale = set(await self.queue.tasks.defer(requests))  # the attempt is given back
        self.queue._log([e for e in events if e.task_id not in stale])

    async def _poison(self, claims: Sequence[ClaimedTask]) -> None:
        """Tasks whose every attempt died with its worker end as WorkerCrashedError."""
        self.poisoned += len(claims)
        outcomes = [
            Outcome(
                claimed=c,
                status=TaskStatus.ERROR,
                error=ErrorInfo.from_exception(
                    WorkerCrashedError(
                        f"the worker died during each of the {c.task.attempt - 1} attempts"
                    )
                ),
                finished_at=now(),
                attempt=c.task.attempt - 1,
                worker_id=self.worker_id,
                crashed=True,
            )
            for c in claims
        ]
        await self.report(outcomes, final=True)

    async def renew(self, claims: Sequence[ClaimedTask]) -> set[str]:
        if not claims:
            return set()
        refused = set(await self.queue.tasks.renew([LeaseRef.of(c) for c in claims], self.lease))
        return await self._lost(refused)

    async def _lost(self, refused: set[str]) -> set[str]:
        """Leases the store refused (a renewal's or a progress write's fence): those runs
        end here without an outcome. Returns the ids the pool is to stop as lost leases:
        the tasks ``cancel`` ended go to this store's cancel watchers instead (as a
        cancel notification would have), so the pool stops them as cancelled, not as
        lost, when the renewal sees the cancel before the notification or status poll."""
        if not refused:
            return refused
        tasks = self.queue.tasks
        try:
            got = await tasks.get(list(refused))
        except Exception as exc:  # the status is only for the report: still stop them
            _log.debug("reading the status of tasks whose lease was refused failed: %s", exc)
            got = []
        cancelled = {t.id for t in got if t is not None and t.status is TaskStatus.CANCELLED}
        if cancelled:
            tasks.cancel_feed.push(cancelled)
        lost = refused - cancelled
        if lost:
            self._settle(lost)
            if self.observer is not None:
                self.observer.abandoned(lost)
        return lost

    async def set_progress(self, updates: Sequence[tuple[ClaimedTask, Progress]]) -> set[str]:
        """Store progress fenced by the leases (a renewal too); one PROGRESS event per
        task stored. Returns the ids whose lease was lost."""
        if not updates:
            return set()
        refused = set(
            await self.queue.tasks.set_progress(
                [ProgressUpdate(c.task.id, c.token, p) for c, p in updates], self.lease
            )
        )
        lost = await self._lost(refused)
        ev = self.queue.events
        if ev is not None and ev.enabled:
            ev.log_many(
                progress_event(c.task, p, worker_id=self.worker_id)
                for c, p in updates
                if c.task.id not in refused
            )
        return lost

    async def watch_cancels(
        self, running: Callable[[], Collection[str]], on_cancel: Callable[[list[str]], None]
    ) -> None:
        """Report held tasks ``cancel`` ended, through the store's notification path.
        Standbys are watched too: a cancelled one is dropped before it could start, and
        the key's next task is claimed in its place."""

        def held() -> Collection[str]:
            if not self._standbys:
                return running()
            waiting = [sb.claim.task.id for sb in self._standbys.values() if sb.claim]
            return [*running(), *waiting]

        def cancelled(task_ids: list[str]) -> None:
            standing = {
                sb.claim.task.id: sb for sb in self._standbys.values() if sb.claim is not None
            }
            dropped = [i for i in task_ids if i in standing]
            ending = set(task_ids)
            for i in dropped:
                sb = standing[i]
                sb.claim = None  # its lease is gone with the cancel
                sb.job.cancel()
                behind = sb.behind
                del self._standbys[behind.task.id]
                if behind.task.id not in ending:
                    self._stand_by([behind])
            self._settle(task_ids)  # these runs end without an outcome
            ran = [i for i in task_ids if i not in standing]
            if self.observer is not None and ran:
                self.observer.abandoned(ran)
            if ran:
                on_cancel(ran)

        await self.queue.tasks.watch_cancels(self.worker_id, held, cancelled)

    async def release(self, claims: Sequence[ClaimedTask]) -> None:
        if claims and self.observer is not None:
            self.observer.released(claims)
        if claims:
            try:
                await self.queue.tasks.release([LeaseRef.of(c) for c in claims])
            finally:
                self._settle(c.task.id for c in claims)
            self.held_back.freed(c.task for c in claims)

    async def wait_for_work(self, timeout: float) -> bool:  # noqa: ASYNC109
        # An idle worker wakes for its TTL sweep (the next claim runs it), which expires
        # unclaimed tasks of every queue of the store, not only of the queues it serves.
        timeout = min(timeout, max(0.05, self._next_sweep - now()))
        if not self.backend_breaker.allow():
            await anyio.sleep(min(timeout, max(0.0, self.backend_breaker.retry_at() - now())))
            return False
        if self._pushed:
            return True
        if self.held_back.pause:  # ready work is held back by its limits: pace the claims
            await self.held_back.wait(min(timeout, self.held_back.pause))
            return True
        try:
            if self.handover:
                return await self.queue.tasks.wait_for_push(
                    self.queues,
                    timeout,
                    worker_id=self.worker_id,
                    lease=self.lease,
                    inbox=self._inbox,
                )
            return await self.queue.tasks.wait_for_work(self.queues, timeout)
        except BackendUnavailableError:
            self.backend_breaker.record_failure()
            return False

    def _inbox(self, claims: list[ClaimedTask]) -> None:
        """Handed-over claims: straight to the pool (``offer``) when their functions'
        breakers are closed, else kept for the next ``claim``."""
        offer = self.offer
        breakers = self.queue.breakers
        if (
            offer is not None
            and all(breakers.get(c.task.func).state is BreakerState.CLOSED for c in claims)
            and all(self._attempt(c.task) <= c.task.max_retries + 1 for c in claims)
            and offer(claims)
        ):
            self._confirm(claims)
            self._outstanding.update(c.task.id for c in claims)
            return
        self._pushed.extend(claims)

    def _confirm(self, claims: list[ClaimedTask]) -> None:
        """A handed-over lease is short: renew it to ours now, off the start path."""

        async def renew() -> None:
            try:
                lost = await self.renew(claims)
            except BackendUnavailableError as exc:
                _log.debug("renewing %d handed-over leases failed: %s", len(claims), exc)
                return
            except Exception:
                _log.warning("renewing %d handed-over leases failed", len(claims), exc_info=True)
                return
            if lost:  # finished already (fast tasks), or the short lease lapsed
                _log.debug("%d handed-over tasks were not renewed", len(lost))

        self._background(renew())

    def _background(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Run ``coro`` on the loop; ``close`` waits for it."""
        task = asyncio.get_running_loop().create_task(coro)
        self._confirms.add(task)
        task.add_done_callback(self._confirms.discard)
        return task

    # -- standbys ----------------------------------------------------------------------------

    def _stand_by(self, claims: Sequence[ClaimedTask]) -> None:
        """Claim a standby for each capped task (a cap without a rate) that started."""
        stand = self._claim_standby
        if stand is None or self.offer is None:
            return
        for c in claims:
            task = c.task
            if task.max_concurrency is None or task.rate_limit is not None:
                continue
            if task.id in self._standbys:
                continue
            sb = _Standby(c)
            self._standbys[c.task.id] = sb
            sb.job = asyncio.get_running_loop().create_task(self._keep(sb, c, stand))

    async def _keep(self, sb: _Standby, behind: ClaimedTask, stand: Any) -> None:
        """Claim ``sb``'s task, then keep its lease until it runs or goes back."""
        got: ClaimedTask | None = None
        spec = limit_of(behind.task)
        key = spec.key if spec is not None else None
        try:
            pause = self.STANDBY_RETRY
            tried = False
            while got is None and self._standbys.get(behind.task.id) is sb:
                if not tried or key in self._held_keys:
                    # Tried again only while this worker's claims hold the key's work
                    # back (a NATS store finds candidates among that work).
                    tried = True
                    sb.asking = True
                    got = await stand(self.queues, self.worker_id, behind=behind, lease=self.lease)
                    if got is not None:
                        runnable = await self._admit([got])  # breakers, poison, conditions
                        got = runnable[0] if runnable else None
                        if got is not None:
                            self._outstanding.add(got.task.id)
                        break
                    sb.asking = False
                    # None yet: the pool's next claim (now) refreshes what its claims
                    # hold back, where the next try may find one.
                    self.held_back.wake()
                await anyio.sleep(pause)
                pause = min(pause * 2, self.STANDBY_RETRY_MAX)
        except Exception as exc:  # the slot is handed on by the report instead
            _log.debug("claiming a standby task failed: %s", exc)
        finally:
            sb.claim = got
            sb.asking = False
            sb.ready.set()
        while sb.claim is not None:
            await anyio.sleep(max(0.05, self.lease / 3))
            try:
                lost = await self.queue.tasks.renew([LeaseRef.of(sb.claim)], self.lease)
            except Exception as exc:  # tried again at the next tick; the lease is long
                _log.debug("renewing a standby task's lease failed: %s", exc)
                continue
            if lost:  # cancelled, or the lease lapsed: not ours to run any more
                claim, sb.claim = sb.claim, None
                self._settle([claim.task.id])

    async def _standby_known(self, sb: _Standby) -> None:
        """Until ``sb.claim`` is final: a claim on its way to the store is waited for (a
        third of the lease at most); a job that has not asked yet, or pauses between
        tries, is stopped."""
        if sb.ready.is_set():
            return
        if not sb.asking:
            sb.job.cancel()
            await asyncio.wait([sb.job])  # done even if it never started
            return
        with anyio.move_on_after(max(1.0, self.lease / 3)):
            await sb.ready.wait()

    async def _drop(self, standbys: Sequence[_Standby]) -> None:
        """Give ``standbys`` back unrun (waiting for a claim still on its way)."""
        claims: list[ClaimedTask] = []
        for sb in standbys:
            await self._standby_known(sb)
            sb.job.cancel()
            if sb.claim is not None:
                claims.append(sb.claim)
                sb.claim = None
        if claims:
            try:
                await self.release(claims)
            except Exception as exc:  # their leases lapse instead
                _log.debug("releasing %d standby tasks failed: %s", len(claims), exc)

    def run_ended(self, outcome: Outcome) -> None:
        """A run ended (``RunEndSource``): start its standby now, when one is claimed."""
        if not self._standbys:
            return
        sb = self._standbys.get(outcome.task_id)
        if sb is None or sb.claim is None or self.offer is None:
            return
        claim = sb.claim
        if not self.offer([claim]):
            return  # the report releases it
        del self._standbys[outcome.task_id]
        sb.claim = None
        sb.job.cancel()
        self._handed_on.add(outcome.task_id)
        # The pool's next claim runs at once: it finds the key full, and what it holds
        # back is where the next standby comes from.
        self.held_back.wake()

    async def _hand_on(self, outcomes: Sequence[Outcome], *, final: bool) -> int:
        """The slots of ``outcomes`` their standbys took: started at the run's end, or
        now (a standby claimed after it). The others' standbys go back unrun."""
        taken = 0
        dropped: list[_Standby] = []
        for o in outcomes:
            tid = o.task_id
            if tid in self._handed_on:
                self._handed_on.discard(tid)
                taken += 1
                continue
            sb = self._standbys.pop(tid, None)
            if sb is None:
                continue
            await self._standby_known(sb)
            claim = sb.claim
            offer = self.offer
            if claim is not None and not final and offer is not None and offer([claim]):
                sb.claim = None
                sb.job.cancel()
                taken += 1
                self.held_back.wake()
            else:
                dropped.append(sb)
        if dropped:
            await self._drop(dropped)
        return taken

    async def close(self) -> None:
        """End handovers: tasks handed over but never run go back to pending."""
        if self._standbys:
            standbys = list(self._standbys.values())
            self._standbys.clear()
            await self._drop(standbys)
        if self._confirms:
            await asyncio.gather(*self._confirms, return_exceptions=True)
        self._pushed = []
        if self.handover:
            try:
                await self.queue.tasks.close_inbox(self.worker_id)
            except Exception:  # their short leases lapse instead
                _log.warning("closing the handover inbox failed", exc_info=True)

    # -- OutcomeSink -------------------------------------------------------------------------

    async def started(self, claims: Sequence[ClaimedTask]) -> None:
        if self.observer is not None:
            self.observer.started(claims)
        self._stand_by(claims)
        ev = self.queue.events
        if ev is None or not ev.enabled:
            return
        ev.log_many(
            executing_event(c.task, worker_id=self.worker_id, attempt=self._attempt(c.task))
            for c in claims
        )

    async def report(self, outcomes: Sequence[Outcome], *, final: bool = False) -> None:
        """Turn finished attempts into completions/retries, results and events."""
        slots = self.held_back.slots(outcomes)
        if slots and (self._standbys or self._handed_on):
            slots -= await self._hand_on(outcomes, final=final)
        if not slots:
            try:
                await self._report(outcomes, final=final)
            finally:
                self._settle(o.task_id for o in outcomes)
            return
        self._taking += 1
        taken = 0
        try:
            taken = await self._report_and_take(outcomes, slots, final=final)
        finally:
            self._taking -= 1
            if taken < slots:  # the pool's claims paused while this one ran: resume them
                self.held_back.wake()

    async def _report_and_take(
        self, outcomes: Sequence[Outcome], slots: int, *, final: bool
    ) -> int:
        """Report outcomes that freed ``slots`` concurrency slots and claim for them at
        once; how many tasks that claim took."""
        take = slots if not final and self.offer is not None else 0
        try:
            claims = await self._report(outcomes, final=final, take=take)
        finally:
            self._settle(o.task_id for o in outcomes)
        taken = 0
        if take:
            try:
                taken = await self._take_slots(slots, claims)
            except Exception:  # the outcomes are stored: never report them twice
                _log.warning("claiming for freed slots failed", exc_info=True)
        if taken < slots:
            freed = getattr(self.queue.tasks, "limits_freed", None)
            if freed is not None:
                queues = [o.claimed.task.queue for o in outcomes]
                try:
                    await freed(queues)
                except Exception as exc:  # their pauses end on their own
                    _log.debug("telling of freed slots failed: %s", exc)
        return taken

    async def _take_slots(self, n: int, claims: list[ClaimedTask] | None) -> int:
        """Finish and claim next: the concurrency slots this worker just freed are
        claimed from the report itself, so the next task starts one claim round trip
        after the outcome is stored (or with it: ``claims``, when the store claimed in
        the step that stored the outcomes). How many tasks it took."""
        if claims is None:
            claims = await self._claim(n, limited=True)
        else:  # claimed with the outcomes: through what every claim's reply goes through
            claims = await self._claimed(claims, getattr(claims, "since", None) or 0.0)
        if not claims:
            return 0
        self._outstanding.update(c.task.id for c in claims)
        offer = self.offer
        if offer is None or not offer(claims):
            await self.release(claims)
            return 0
        return len(claims)

    async def _report(
        self, outcomes: Sequence[Outcome], *, final: bool, take: int = 0
    ) -> Claims | None:
        """Store the outcomes. With ``take`` (the slots they free), a store that can
        finish and claim in one step (``finish_and_claim``) also claims up to ``take``
        limited tasks: returned as the store replied (None when no claim was made)."""
        q = self.queue
        claims: Claims | None = None
        retry_mgr = q.retry
        breakers = q.breakers
        completions: list[Completion] = []
        retries: list[RetryRequest] = []
        results: dict[str, TaskResult] = {}
        events: dict[str, TaskEvent] = {}
        retry_events: dict[str, TaskEvent] = {}
        retried: set[str] = set()
        ev = q.events
        logging_on = ev is not None and ev.enabled  # events are built only when kept
        t_now = now()
        limit = q.results.payload_limit if q.results is not None else None
        for given in outcomes:
            task = given.claimed.task
            token = given.claimed.token
            attempt = self._attempt(task)
            worker = given.worker_id or self.worker_id
            o = given
            if limit is not None and o.status is TaskStatus.SUCCESS and o.value is not None:
                # A result the store would refuse fails its own task (not retried: the
                # run would return it again), never the batch that carries it.
                o = _fit(o, limit, attempt, worker, q.result_expiry(o.finished_at or t_now))
            oversized = o is not given
            status = o.status
            requested = o.retry_delay is not None  # the task raised Retry: not a failure
            if status is TaskStatus.SUCCESS:
                breakers.record(task.func, True)
            elif status is TaskStatus.ERROR and not final and not oversized:
                if not requested and o.retryable:
                    breakers.record(task.func, False)
                if o.retryable and retry_mgr.should_retry(task, attempt):
                    delay = (
                        o.retry_delay
                        if o.retry_delay is not None
                        else retry_mgr.delay(task, attempt)
                    )
                    eta = t_now + delay
                    retries.append(RetryRequest(task.id, token, eta))
                    retried.add(task.id)
                    if logging_on:
                        retry_events[task.id] = retry_event(
                            task, o.error, eta, attempt, delay=delay, worker_id=worker
                        )
                    continue
            finished = o.finished_at or t_now
            completions.append(Completion(task.id, token, status))
            results[task.id] = TaskResult(
                task_id=task.id,
                status=status,
                payload=o.value,
                error=o.error,
                attempts=attempt,
                started_at=o.started_at,
                finished_at=finished,
                worker_id=worker,
                expires_at=q.result_expiry(finished),
                queue=task.queue,
            )
            if not logging_on:
                continue
            if status is TaskStatus.SUCCESS:
                events[task.id] = complete_event(
                    task, worker_id=worker, attempt=attempt, duration=o.duration
                )
            elif status is TaskStatus.ERROR:
                events[task.id] = error_event(
                    task, o.error, worker_id=worker, attempt=attempt, duration=o.duration
                )
            elif status is TaskStatus.EXPIRED:
                events[task.id] = expired_event(task)
            else:
                events[task.id] = cancelled_event(task, o.error.message if o.error else None)
        stale: set[str] = set()
        report = None
        record: ResultRecord | None = None
        if completions:
            # Results are stored before the completions that make them final, fenced by
            # the lease: a worker killed between the two leaves a task that runs again
            # once its lease expires, never a finished task without its result
            # (tests/chaos). Backends holding the results do both in one atomic step.
            # With a record, the dependents a failure cancels get their results in the
            # same step too (``complete_with_results``).
            record = q.result_record() if self._finish_records else None
            both = getattr(q.tasks, "finish_and_claim", None) if take else None
            done = None
            if both is not None and self.backend_breaker.allow():
                since = time.monotonic()
                done = await both(
                    completions,
                    list(results.values()),
                    q.results,
                    lease=self.lease,
                    dependency_policy=q.dependency_policy,
                    record=record,
                    queues=self.queues,
                    worker_id=self.worker_id,
                    limit=take,
                )
            if done is not None:
                report, got = done
                claims = Claims(got)
                claims.since = self._counted_since(since) if got else since
            elif record is not None:
                report = await q.tasks.finish(
                    completions,
                    list(results.values()),
                    q.results,
                    lease=self.lease,
                    dependency_policy=q.dependency_policy,
                    record=record,
                )
            else:
                report = await q.tasks.finish(
                    completions,
                    list(results.values()),
                    q.results,
                    lease=self.lease,
                    dependency_policy=q.dependency_policy,
                )
            stale.update(report.stale)
        if retries:
            stale.update(await q.tasks.retry(retries))
        if stale:
            _log.info("discarding outcomes of %d tasks whose lease was lost", len(stale))
        if logging_on:
            log: list[TaskEvent] = [e for tid, e in events.items() if tid not in stale]
            log.extend(e for tid, e in retry_events.items() if tid not in stale)
            q._log(log)
        if report is not None:
            await q.record_cascade(report, stored=record is not None)
        if self.observer is not None:
            self.observer.reported(outcomes, retried)
        return claims


def _fit(
    o: Outcome, limit: PayloadLimit, attempt: int, worker: str, expires: float | None
) -> Outcome:
    """``o``, or an ``error`` outcome naming the limit when its result is too large."""
    result = TaskResult(
        task_id=o.task_id,
        status=o.status,
        payload=o.value,
        attempts=attempt,
        started_at=o.started_at,
        finished_at=o.finished_at or now(),
        worker_id=worker,
        expires_at=expires,
        queue=o.claimed.task.queue,
    )
    err = limit.result_error(result)
    if err is None:
        return o
    return msgspec.structs.replace(
        o, status=TaskStatus.ERROR, value=None, error=ErrorInfo.from_exception(err)
    )
