"""Recurring and one-shot schedules and their next-run arithmetic."""

from __future__ import annotations

import math
from datetime import datetime
from typing import TYPE_CHECKING

import msgspec

from ._enums import MisfirePolicy, ScheduleKind, ScheduleState
from ._errors import ScheduleError
from ._ids import new_id
from ._task import Task
from ._time import now

if TYPE_CHECKING:
    from zoneinfo import ZoneInfo

    from croniter import croniter as _Croniter

__all__ = ["Schedule", "cron_next"]


def _zone(name: str) -> ZoneInfo:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError  # only schedules with a zone

    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ScheduleError(
            f"unknown time zone {name!r}: use an IANA name such as 'Europe/Berlin'"
        ) from exc


def _croniter(expression: str, start: datetime) -> _Croniter:
    from croniter import croniter

    fields = expression.split()
    # Seconds are optional: a sixth field comes first, as in Quartz and Spring.
    seconds_first = len(fields) == 6
    try:
        return croniter(expression, start, second_at_beginning=seconds_first)
    except (ValueError, KeyError, TypeError) as exc:  # croniter's errors subclass ValueError
        raise ScheduleError(f"invalid cron expression {expression!r}: {exc}") from exc


def cron_next(expression: str, after: float, timezone: str = "UTC") -> float:
    """The first instant strictly after ``after`` matching ``expression`` in ``timezone``.

    Wall-clock fields are read in ``timezone``, so ``0 9 * * *`` in Europe/Berlin stays
    at 09:00 local time across daylight-saving changes. Like Vixie cron, a wall time
    skipped by a spring-forward jump runs right after the jump, and a job with a fixed
    hour runs once, not twice, in the hour repeated when clocks fall back; jobs whose hour
    is ``*`` keep running through the repeated hour.
    """
    start = datetime.fromtimestamp(after, tz=_zone(timezone))
    it = _croniter(expression, start)
    fields = expression.split()
    hour_field = fields[2] if len(fields) == 6 else (fields[1] if len(fields) == 5 else "*")
    nxt: datetime = it.get_next(datetime)
    while nxt.fold == 1 and hour_field != "*":
        nxt = it.get_next(datetime)
    return nxt.timestamp()


class Schedule(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """A task template fired by cron expression, fixed interval, or once at an instant.

    ``next_run_at`` is the next due instant (None once the schedule is finished).
    Stores advance it atomically when a scheduler claims a run (``claim_due``), so a run
    fires once however many schedulers watch it.
    """

    task: Task
    kind: ScheduleKind
    id: str = msgspec.field(default_factory=new_id)
    name: str | None = None
    expression: str | None = None
    """Cron expression (5 fields, or 6 with leading seconds) for ``kind=cron``."""
    interval: float | None = None
    """Seconds between runs for ``kind=interval``."""
    at: float | None = None
    """The instant of a one-shot schedule."""
    timezone: str = "UTC"
    start_at: float | None = None
    """Interval anchor / earliest run; default: creation time."""
    end_at: float | None = None
    """No run after this instant."""
    max_runs: int | None = None
    runs: int = 0
    next_run_at: float | None = None
    last_run_at: float | None = None
    state: ScheduleState = ScheduleState.ACTIVE
    misfire_policy: MisfirePolicy = MisfirePolicy.RUN_ONCE
    misfire_grace: float = 60.0
    """With ``skip``: a run more than this many seconds late is skipped."""
    created_at: float = msgspec.field(default_factory=now)

    @classmethod
    def create(
        cls,
        task: Task,
        *,
        cron: str | None = None,
        interval: float | None = None,
        at: float | None = None,
        timezone: str = "UTC",
        start_at: float | None = None,
        end_at: float | None = None,
        max_runs: int | None = None,
        name: str | None = None,
        misfire_policy: MisfirePolicy | str = MisfirePolicy.RUN_ONCE,
        misfire_grace: float = 60.0,
        created_at: float | None = None,
    ) -> Schedule:
        """Validate a definition and compute its first run. Give exactly one of
        ``cron``, ``interval`` or ``at``."""
        given = [
            n for n, v in (("cron", cron), ("interval", interval), ("at", at)) if v is not None
        ]
        if len(given) != 1:
            raise ScheduleError(f"give exactly one of cron, interval or at (got {given or 'none'})")
        _zone(timezone)
        if interval is not None and not (interval > 0 and math.isfinite(interval)):
            raise ScheduleError(f"interval must be a positive number of seconds, got {interval!r}")
        if max_runs is not None and max_runs < 1:
            raise ScheduleError(f"max_runs must be at least 1, got {max_runs!r}")
        try:
            policy = MisfirePolicy(misfire_policy)
        except ValueError as exc:
            accepted = ", ".join(p.value for p in MisfirePolicy)
            raise ScheduleError(
                f"misfire_policy {misfire_policy!r} is not one of {accepted}"
            ) from exc
        created = now() if created_at is None else created_at
        if cron is not None:
            kind = ScheduleKind.CRON
            _croniter(cron, datetime.fromtimestamp(created, tz=_zone(timezone)))
        elif interval is not None:
            kind = ScheduleKind.INTERVAL
        else:
            kind = ScheduleKind.AT
        sched = cls(
            task=task,
            kind=kind,
            name=name,
            expression=cron,
            interval=float(interval) if interval is not None else None,
            at=at,
            timezone=timezone,
            start_at=start_at,
            end_at=end_at,
            max_runs=max_runs,
            misfire_policy=policy,
            misfire_grace=misfire_grace,
            created_at=created,
        )
        first = sched.at if kind is ScheduleKind.AT else sched.next_after(created - 1e-6)
        return msgspec.structs.replace(sched, next_run_at=sched._bounded(first, runs=0))

    def next_after(self, after: float) -> float | None:
        """The first run strictly after ``after`` by the timing rule alone (ignoring
        ``max_runs``/``end_at``); None for a one-shot whose instant has passed."""
        if self.kind is ScheduleKind.CRON:
            assert self.expression is not None
            return cron_next(self.expression, after, self.timezone)
        if self.kind is ScheduleKind.INTERVAL:
            assert self.interval is not None
            anchor = self.created_at if self.start_at is None else self.start_at
            if after < anchor:
                return anchor
            k = math.floor((after - anchor) / self.interval) + 1
            return anchor + k * self.interval
        assert self.at is not None
        return self.at if self.at > after else None

    def _bounded(self, when: float | None, *, runs: int) -> float | None:
        if when is None:
            return None
        if self.max_runs is not None and runs >= self.max_runs:
            return None
        if self.end_at is not None and when > self.end_at:
            return None
        return when

    @property
    def finished(self) -> bool:
        """True once the schedule will never fire again."""
        return self.next_run_at is None

    def is_due(self, at: float | None = None) -> bool:
        """True if active and its next run has come."""
        t = now() if at is None else at
        return (
            self.state is ScheduleState.ACTIVE
            and self.next_run_at is not None
            and self.next_run_at <= t
        )

    def advance(self, at: float | None = None) -> tuple[Schedule, bool]:
        """Consume the due run at ``at`` (default: now).

        Returns the schedule with ``next_run_at`` moved past ``at`` and whether the run
        should fire: runs missed while nobody was watching collapse into one
        (``run_once``), or are skipped when later than ``misfire_grace`` (``skip``).
        Stores call this inside their atomic claim.
        """
        t = now() if at is None else at
        due = self.next_run_at
        if due is None or due > t:
            return self, False
        fire = not (self.misfire_policy is MisfirePolicy.SKIP and t - due > self.misfire_grace)
        runs = self.runs + 1 if fire else self.runs
        nxt = self._bounded(self.next_after(max(t, due)), runs=runs)
        return (
            msgspec.structs.replace(
                self, runs=runs, next_run_at=nxt, last_run_at=due if fire else self.last_run_at
            ),
            fire,
        )

    def paused(self) -> Schedule:
        """A paused copy: it keeps its definition and does not fire."""
        return msgspec.structs.replace(self, state=ScheduleState.PAUSED)

    def resumed(self, at: float | None = None) -> Schedule:
        """An active copy that continues from the next due time after ``at``.

        With ``run_once`` a run missed during the pause fires once right away; with
        ``skip`` the schedule waits for its next regular run.
        """
        t = now() if at is None else at
        nxt = self.next_run_at
        if nxt is not None and nxt <= t and self.misfire_policy is MisfirePolicy.SKIP:
            nxt = self._bounded(self.next_after(t), runs=self.runs)
        return msgspec.structs.replace(self, state=ScheduleState.ACTIVE, next_run_at=nxt)

    def task_for_run(self, due: float) -> Task:
        """A fresh task (new id) from the template for the run due at ``due``."""
        meta = {**self.task.metadata, "schedule_id": self.id, "scheduled_for": due}
        return msgspec.structs.replace(self.task, id=new_id(), created_at=now(), metadata=meta)
