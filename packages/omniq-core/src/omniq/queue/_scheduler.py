"""AsyncScheduler: fire due schedules into the task queue, safe to run on many hosts.

Every scheduler loops over ``ScheduleStorage.claim_due(now)``, which advances a due
schedule atomically inside the engine, so a run is handed to exactly one scheduler
however many run at once. The claimed run becomes a task whose id is derived from
(schedule id, due instant), and enqueueing is idempotent by id, so enqueueing a run twice
stores it once. That makes a crash between claim and enqueue recoverable: every
scheduler checks, on each pass, that the last run of each active schedule exists as a
task and enqueues it (under the same id) if it does not. A running scheduler also
expires the store's unclaimed tasks whose TTL passed, about once a second.
"""

from __future__ import annotations

import builtins
import hashlib
import logging
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol

import anyio
import msgspec

from omniq.events import AsyncEventLogger
from omniq.models import (
    BackendUnavailableError,
    MisfirePolicy,
    Schedule,
    ScheduleError,
    ScheduleState,
    Task,
    TaskStatus,
    as_timestamp,
    now,
)
from omniq.storage import ScheduleRun, ScheduleStorage

from ._build import TaskSpec
from ._queue import AsyncTaskQueue

__all__ = [
    "AsyncScheduler",
    "Clock",
    "SchedulerStats",
    "SystemClock",
    "TickReport",
    "run_task",
    "run_task_id",
]

log = logging.getLogger("omniq.scheduler")

_NOT_FOR_SCHEDULES = ("eta", "delay", "depends_on", "task_id")


class Clock(Protocol):
    """Where a scheduler reads the time and waits; tests inject a manual clock."""

    def now(self) -> float:
        """Unix seconds."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` (may be cancelled early by the scheduler's wake-up)."""
        ...


class SystemClock:
    """OmniQ's clock (``omniq.models.now``: the wall clock unless a test installed
    another) and anyio's sleep."""

    def now(self) -> float:
        return now()

    async def sleep(self, seconds: float) -> None:
        await anyio.sleep(seconds)


def run_task_id(schedule_id: str, due: float) -> str:
    """The task id of ``schedule_id``'s run due at ``due``: the same on every host.

    UUIDv7 layout (so ids still sort by time) with the due instant's milliseconds as the
    timestamp and a hash of (schedule id, due) as the rest.
    """
    digest = hashlib.blake2b(f"{schedule_id}|{due!r}".encode(), digest_size=10).digest()
    ms = max(0, round(due * 1000)) & ((1 << 48) - 1)
    h = int.from_bytes(digest, "big")
    rand_a = (h >> 68) & 0xFFF
    rand_b = h & ((1 << 62) - 1)
    value = (ms << 80) | (0x7 << 76) | (rand_a << 64) | (0b10 << 62) | rand_b
    x = f"{value:032x}"
    return f"{x[:8]}-{x[8:12]}-{x[12:16]}-{x[16:20]}-{x[20:]}"


def _reid(tasks: tuple[Task, ...], parent: str, tag: str) -> tuple[Task, ...]:
    """Follow-up tasks with ids derived from the run's id (a template's fixed ids would
    make every run after the first one a duplicate)."""
    out: list[Task] = []
    for i, t in enumerate(tasks):
        tid = run_task_id(f"{parent}/{tag}{i}", 0.0)
        out.append(
            msgspec.structs.replace(
                t,
                id=tid,
                on_success=_reid(t.on_success, tid, "s"),
                on_failure=_reid(t.on_failure, tid, "f"),
            )
        )
    return tuple(out)


def run_task(schedule: Schedule, due: float, *, at: float) -> Task:
    """The task for ``schedule``'s run due at ``due``, created at ``at``.

    The id is ``run_task_id(schedule.id, due)``; the template's TTL is kept relative to
    the run (``expires_at`` moves with it) and the run is due at once.
    """
    template = schedule.task
    base = schedule.task_for_run(due)
    expires_at = None
    if template.expires_at is not None:
        start = max(template.created_at, template.eta or template.created_at)
        expires_at = at + max(0.0, template.expires_at - start)
    rid = run_task_id(schedule.id, due)
    return msgspec.structs.replace(
        base,
        id=rid,
        created_at=at,
        eta=None,
        expires_at=expires_at,
        attempt=0,
        status=TaskStatus.PENDING,
        on_success=_reid(template.on_success, rid, "s"),
        on_failure=_reid(template.on_failure, rid, "f"),
    )


class TickReport(msgspec.Struct):
    """What one scheduler pass did."""

    now: float
    fired: list[Task] = msgspec.field(default_factory=list)
    """Tasks enqueued for runs this scheduler claimed."""
    recovered: list[Task] = msgspec.field(default_factory=list)
    """Tasks enqueued for runs claimed earlier whose task was missing (a scheduler died
    between claim and enqueue)."""
    next_run_at: float | None = None
    """The earliest next run of an active schedule after this pass."""
    more: bool = False
    """The claim hit its batch limit: more runs may be due right now."""


class SchedulerStats(msgspec.Struct):
    """Counters of one ``run()``."""

    ticks: int = 0
    fired: int = 0
    recovered: int = 0
    errors: int = 0


def _seconds(value: float | timedelta | None) -> float | None:
    if value is None:
        return None
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


def _instant(value: float | datetime | None, name: str) -> float | None:
    try:
        return as_timestamp(value)
    except ValueError as exc:
        raise ScheduleError(f"{name}: {exc}") from None


class AsyncScheduler:
    """Claims due schedule runs and enqueues their tasks; manages schedules.

    Run as many as you like (threads, processes, hosts sharing one engine): each due run
    is enqueued once, and as long as one scheduler lives, schedules keep firing.
    ``run()`` sleeps until the earliest next run, at most ``max_sleep`` seconds, so
    schedules added, resumed or changed elsewhere are seen within that bound; ``clock``
    supplies the time and the sleep (inject one in tests).

    Crash safety: a run's task id derives from (schedule id, due), so enqueueing is
    idempotent. A scheduler that dies after ``claim_due`` and before the enqueue leaves
    the schedule's ``last_run_at`` pointing at a run with no task; every scheduler
    re-enqueues such runs (``recovery_grace`` seconds after they fell due, up to
    ``recovery_window`` seconds back). Remaining window: only the *last* run of a
    schedule is checked, so if the next run of the same schedule is claimed before any
    scheduler's recovery pass sees the gap (periods shorter than about
    ``recovery_grace + max_sleep``), the lost run stays lost; and a schedule whose task
    template carries an idempotency ``key`` is not recovered (its runs may legitimately
    be absorbed by a live task with that key).
    """

    def __init__(
        self,
        queue: AsyncTaskQueue,
        schedules: ScheduleStorage,
        *,
        clock: Clock | None = None,
        max_sleep: float = 1.0,
        batch: int = 100,
        recovery_grace: float = 2.0,
        recovery_window: float = 300.0,
        misfire_policy: MisfirePolicy | str = MisfirePolicy.RUN_ONCE,
        misfire_grace: float = 60.0,
        events: AsyncEventLogger | None = None,
    ) -> None:
        if max_sleep <= 0:
            raise ScheduleError(f"max_sleep must be > 0 seconds, got {max_sleep}")
        self.queue = queue
        self.schedules = schedules
        self.clock: Clock = clock or SystemClock()
        self.max_sleep = max_sleep
        self.batch = batch
        self.recovery_grace = recovery_grace
        retention = queue.settings.result_ttl
        # A run's task is purged `retention` s after it finished: never look back that far.
        self.recovery_window = (
            min(recovery_window, retention / 2) if retention > 0 else recovery_window
        )
        self.misfire_policy = MisfirePolicy(misfire_policy)
        self.misfire_grace = misfire_grace
        self.events = events if events is not None else queue.events
        self.stats = SchedulerStats()
        self._confirmed: OrderedDict[str, None] = OrderedDict()
        self._stopping = False
        self._running = False
        self._sleep_scope: anyio.CancelScope | None = None
        self.sweep_interval = 1.0
        """Seconds between the TTL sweeps ``run()`` makes (``_sweep``)."""
        self._next_sweep = 0.0

    # -- managing schedules ----------------------------------------------------------------

    def build(
        self,
        func: TaskSpec,
        *,
        cron: str | None = None,
        interval: float | timedelta | None = None,
        at: float | datetime | None = None,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        name: str | None = None,
        timezone: str | None = None,
        start_at: float | datetime | None = None,
        end_at: float | datetime | None = None,
        max_runs: int | None = None,
        misfire_policy: MisfirePolicy | str | None = None,
        misfire_grace: float | timedelta | None = None,
        **task_options: Any,
    ) -> Schedule:
        """A validated Schedule (not stored) whose runs call ``func(*args, **kwargs)``
        with ``task_options`` (queue, priority, ttl, timeout, max_retries, ...)."""
        bad = [k for k in _NOT_FOR_SCHEDULES if task_options.get(k) is not None]
        if bad:
            raise ScheduleError(
                f"{', '.join(bad)} cannot be set on a schedule's task (the schedule decides "
                "when each run is due; start_at sets the first run)"
            )
        template = self.queue.build(func, args, kwargs, **task_options)
        grace = _seconds(misfire_grace)
        return Schedule.create(
            template,
            cron=cron,
            interval=_seconds(interval),
            at=_instant(at, "at"),
            timezone=timezone or "UTC",
            start_at=_instant(start_at, "start_at"),
            end_at=_instant(end_at, "end_at"),
            max_runs=max_runs,
            name=name,
            misfire_policy=misfire_policy or self.misfire_policy,
            misfire_grace=self.misfire_grace if grace is None else grace,
            created_at=self.clock.now(),
        )

    async def schedule(self, func: TaskSpec, **options: Any) -> Schedule:
        """Build (see ``build``) and store a schedule; returns it."""
        sched = self.build(func, **options)
        await self.add([sched])
        return sched

    async def add(self, schedules: Sequence[Schedule]) -> None:
        """Store (create or replace) schedules and wake the local loop."""
        await self.schedules.put(list(schedules))
        self.wake()

    async def get(self, schedule_id: str) -> Schedule | None:
        return await self.schedules.get(schedule_id)

    async def list(self, *, state: ScheduleState | str | None = None) -> builtins.list[Schedule]:
        """All schedules (or those in one state), ordered by id."""
        st = ScheduleState(state) if state is not None else None
        return await self.schedules.list(state=st)

    async def delete(self, schedule_id: str) -> bool:
        """Delete a schedule; True if it existed. Tasks already enqueued stay."""
        return await self.schedules.delete(schedule_id)

    async def pause(self, schedule_id: str) -> Schedule | None:
        """Persistently pause (no run fires until resumed); logs SCHEDULE_PAUSED.
        None for an unknown id."""
        sched = await self.schedules.pause(schedule_id)
        if sched is not None and self.events is not None:
            self.events.schedule_paused(sched)
        return sched

    async def resume(self, schedule_id: str) -> Schedule | None:
        """Persistently resume from the next due time (a run missed while paused fires
        once with ``run_once``, not at all with ``skip``); logs SCHEDULE_RESUMED."""
        sched = await self.schedules.resume(schedule_id, now=self.clock.now())
        if sched is not None:
            if self.events is not None:
                self.events.schedule_resumed(sched)
            self.wake()
        return sched

    # -- firing ----------------------------------------------------------------------------

    async def tick(self, now: float | None = None) -> TickReport:
        """One pass: claim due runs and enqueue them, re-enqueue lost runs, and report
        the earliest next run."""
        t = self.clock.now() if now is None else now
        report = TickReport(now=t)
        runs: builtins.list[ScheduleRun] = await self.schedules.claim_due(t, limit=self.batch)
        report.more = len(runs) >= self.batch
        if runs:
            tasks = [run_task(r.schedule, r.due, at=t) for r in runs]
            await self.queue.enqueue_many(tasks)
            for task in tasks:
                self._confirm(task.id)
            report.fired = tasks
        active = await self.schedules.list(state=ScheduleState.ACTIVE)
        report.recovered = await self._recover(active, t)
        nexts = [s.next_run_at for s in active if s.next_run_at is not None]
        report.next_run_at = min(nexts) if nexts else None
        self.stats.ticks += 1
        self.stats.fired += len(report.fired)
        self.stats.recovered += len(report.recovered)
        return report

    def _confirm(self, task_id: str) -> None:
        self._confirmed[task_id] = None
        self._confirmed.move_to_end(task_id)
        while len(self._confirmed) > 10_000:
            self._confirmed.popitem(last=False)

    async def _recover(self, active: Sequence[Schedule], t: float) -> builtins.list[Task]:
        lo, hi = t - self.recovery_window, t - self.recovery_grace
        want: dict[str, Schedule] = {}
        for s in active:
            due = s.last_run_at
            if due is None or not (lo <= due <= hi) or s.task.key is not None:
                continue
            rid = run_task_id(s.id, due)
            if rid not in self._confirmed:
                want[rid] = s
        if not want:
            return []
        ids = list(want)
        found = await self.queue.tasks.get(ids)
        missing: builtins.list[Task] = []
        for rid, got in zip(ids, found, strict=True):
            if got is not None:
                self._confirm(rid)
                continue
            s = want[rid]
            assert s.last_run_at is not None
            missing.append(run_task(s, s.last_run_at, at=t))
        if missing:
            log.warning(
                "re-enqueueing %d scheduled run(s) claimed by a scheduler that stopped "
                "before enqueueing them: %s",
                len(missing),
                ", ".join(
                    f"{m.metadata.get('schedule_id')}@{m.metadata.get('scheduled_for')}"
                    for m in missing
                ),
            )
            await self.queue.enqueue_many(missing)
            for m in missing:
                self._confirm(m.id)
        return missing

    def delay_after(self, report: TickReport) -> float:
        """How long ``run()`` sleeps after a pass: until the earliest next run, at most
        ``max_sleep`` (0 when the claim was cut at the batch limit)."""
        if report.more:
            return 0.0
        if report.next_run_at is None:
            return self.max_sleep
        return min(self.max_sleep, max(0.0, report.next_run_at - self.clock.now()))

    async def run(self) -> SchedulerStats:
        """Fire due runs until ``stop()`` (or cancellation). A failing pass (engine
        unreachable...) is logged and retried after ``max_sleep``."""
        self._stopping = False
        self._running = True
        try:
            while not self._stopping:
                await self._sweep()
                try:
                    report = await self.tick()
                except BackendUnavailableError as exc:  # the store logs its outage itself
                    self.stats.errors += 1
                    log.debug("scheduler pass skipped: %s", exc)
                    delay = self.max_sleep
                except Exception:  # keep firing through an engine outage
                    self.stats.errors += 1
                    log.exception("scheduler pass failed; retrying in %.1fs", self.max_sleep)
                    delay = self.max_sleep
                else:
                    delay = self.delay_after(report)
                if not self._stopping:
                    await self._sleep(delay)
        finally:
            self._running = False
            if self.events is not None:
                await self.events.flush()
        return self.stats

    async def _sweep(self) -> None:
        """Expire the store's unclaimed tasks past their TTL, whatever their queue (with
        their results, ``TTLManager.expire``), at most every ``sweep_interval`` seconds:
        expiry does not wait for a worker serving their queue."""
        t = time.monotonic()
        if t < self._next_sweep:
            return
        self._next_sweep = t + self.sweep_interval
        try:
            await self.queue.ttl.expire()
        except BackendUnavailableError as exc:  # the store logs its outage itself
            log.debug("TTL sweep skipped: %s", exc)
        except Exception:
            log.warning("TTL sweep failed", exc_info=True)

    async def _sleep(self, delay: float) -> None:
        if delay <= 0:
            await anyio.lowlevel.checkpoint()
            return
        with anyio.CancelScope() as scope:
            self._sleep_scope = scope
            try:
                await self.clock.sleep(delay)
            finally:
                self._sleep_scope = None

    def wake(self) -> None:
        """Cut the current sleep short (call on the scheduler's event loop)."""
        scope = self._sleep_scope
        if scope is not None:
            scope.cancel()

    def stop(self) -> None:
        """Ask ``run()`` to return after the current pass (call on its event loop)."""
        self._stopping = True
        self.wake()

    @property
    def running(self) -> bool:
        return self._running
