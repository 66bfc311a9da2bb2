"""The NATS backend's task record and its changes (pure functions of a record)."""

from __future__ import annotations

from typing import Any

import msgspec

from omniq.models import (
    CorruptRecordError,
    ErrorInfo,
    Task,
    TaskCancelledError,
    TaskResult,
    TaskStatus,
)
from omniq.storage._interfaces import CASCADE_REASON

__all__ = [
    "FAILED",
    "KEPT_FIELDS",
    "CorruptRec",
    "Rec",
    "Work",
    "any_dec",
    "cascaded",
    "claim_fn",
    "consumer_of",
    "enc",
    "finished",
    "kept_of",
    "lapsed",
    "pending",
    "prio_of",
    "prio_token",
    "rec_dec",
    "with_dependent",
    "work_dec",
]

_replace = msgspec.structs.replace
FAILED = frozenset({TaskStatus.ERROR, TaskStatus.CANCELLED, TaskStatus.EXPIRED})
"""Terminal states that fail a dependency."""


KEPT_FIELDS = (
    "status",
    "value",
    "payload",
    "error",
    "attempts",
    "started_at",
    "finished_at",
    "worker_id",
    "expires_at",
    "queue",
)
"""The ``TaskResult`` fields a completion record keeps (``Rec.kept``), in their order
there: every field but the task id, which the record holds already."""


def kept_of(result: TaskResult) -> list[Any]:
    """``result`` as ``Rec.kept`` holds it: its values in ``KEPT_FIELDS`` order, an
    array without field names, to keep the record small."""
    return [getattr(result, f) for f in KEPT_FIELDS]


class Rec(msgspec.Struct, array_like=True):
    """A task record: the task (status/attempt/eta current) plus lease and dependency
    state. ``gen`` counts the times the task became ready (fences work messages)."""

    task: Task
    gen: int = 0
    token: str | None = None
    worker: str | None = None
    until: float | None = None
    finished: float | None = None
    blocked: bool = False
    released: bool = False
    dependents: list[str] = msgspec.field(default_factory=list)
    result: TaskResult | None = None
    """The result of a task ``cancel``/``expire`` (or their cascade) ended, written with
    the state change; the result store reads it here until its own copy exists."""
    ended_by: str | None = None
    """The lease token of the completion that ended the task (``complete``/``finish``):
    a retried finish whose record write was stored but whose reply was lost knows the
    task ended by its own hand, and stores its result again if that write was lost."""
    kept: list[Any] | None = None
    """The worker's result (``kept_of``), written with the completion that ended the
    task in a capped task's hand-off (``finish_and_claim``): the result store reads it
    here while its own copy is missing (a server that stopped mid-batch kept the
    record and dropped the result)."""

    def stored_result(self) -> TaskResult | None:
        """The result this record holds for the result store: the worker's (``kept``)
        once ended, else the one ``cancel``/``expire`` wrote (``result``). A kept
        result that does not convert counts as none."""
        if self.kept is not None and self.task.status.is_terminal:
            fields = dict(zip(KEPT_FIELDS, self.kept, strict=False))
            try:
                return msgspec.convert({"task_id": self.task.id, **fields}, TaskResult)
            except msgspec.ValidationError:
                pass
        return self.result

    ahead: bool = False
    """Claimed as a standby (``claim_standby``): the lease lapsing gives the claim's
    attempt back, once per task (``spared``): a worker that dies holding a task it had
    not started yet costs that task no attempt, while a task that brings its worker
    down on each run still runs out of attempts."""
    spared: bool = False
    """A lapsed standby claim gave its attempt back already."""


class CorruptRec(CorruptRecordError):
    """A task record in the bucket that does not decode, at revision ``rev`` (a
    revision-checked write there replaces exactly the bytes that were read)."""

    def __init__(self, task_id: str, rev: int, reason: str) -> None:
        super().__init__(reason)
        self.task_id = task_id
        self.rev = rev


def decode_rec(task_id: str, raw: bytes, rev: int) -> Rec:
    """A stored record; ``CorruptRec`` if the bytes are not one."""
    try:
        return rec_dec.decode(raw)
    except (msgspec.DecodeError, TypeError, ValueError, OverflowError) as exc:
        raise CorruptRec(task_id, rev, f"stored task does not decode: {exc}") from exc


class Work(msgspec.Struct, array_like=True):
    """A ready-task message: the record as of revision ``rev`` (saves a read on claim)."""

    id: str
    gen: int
    rev: int
    rec: bytes


enc = msgspec.msgpack.Encoder()
rec_dec = msgspec.msgpack.Decoder(Rec)
work_dec = msgspec.msgpack.Decoder(Work)
any_dec = msgspec.msgpack.Decoder()


def prio_token(p: int) -> str:
    return f"n{-p}" if p < 0 else str(p)


def prio_of(s: str) -> int:
    return -int(s[1:]) if s.startswith("n") else int(s)


def claim_fn(
    rec: Rec, *, gen: int, token: str, until: float, worker: str, t: float, ahead: bool = False
) -> Rec | None:
    task = rec.task
    if task.status is not TaskStatus.PENDING or rec.gen != gen or rec.blocked:
        return None
    if task.expires_at is not None and task.expires_at <= t:
        return None
    running = _replace(task, status=TaskStatus.RUNNING, attempt=task.attempt + 1)
    return _replace(rec, task=running, token=token, worker=worker, until=until, ahead=ahead)


def lapsed(rec: Rec) -> Rec:
    """``rec`` (running) back to pending once its lease lapsed: the attempt counts (a
    worker died in it), unless the claim was a standby's not spared before."""
    if rec.ahead and not rec.spared:
        return _replace(pending(rec, max(0, rec.task.attempt - 1), rec.task.eta), spared=True)
    return pending(rec, rec.task.attempt, rec.task.eta)


def consumer_of(subject: str) -> str:
    """Durable consumer name of a work subject ``NS.work.<queue>.<prio>``."""
    _, _, qtok, ptok = subject.split(".", 3)
    return f"w-{qtok}-{ptok}"


def with_dependent(rec: Rec, child: str) -> Rec | None:
    if rec.task.status.is_terminal or child in rec.dependents:
        return None
    return _replace(rec, dependents=[*rec.dependents, child])


def finished(rec: Rec, status: TaskStatus, t: float) -> Rec:
    return _replace(
        rec,
        task=_replace(rec.task, status=status),
        token=None,
        worker=None,
        until=None,
        finished=t,
        blocked=False,
        ended_by=None,
    )


def pending(rec: Rec, attempt: int, eta: float | None) -> Rec:
    task = _replace(rec.task, status=TaskStatus.PENDING, attempt=attempt, eta=eta)
    return _replace(
        rec,
        task=task,
        token=None,
        worker=None,
        until=None,
        gen=rec.gen + 1,
        ended_by=None,
        kept=None,
        ahead=False,
    )


def cascaded(rec: Rec, deps: list[tuple[Rec | None, int]]) -> Rec:
    """A dependent just cancelled because a dependency failed, holding its result when
    that dependency holds one (it was ended by ``cancel``/``expire`` with a result
    record): the same retention, written with the cancel itself, even when a guard's
    re-check does the cancelling after a crash."""
    for dep, _ in deps:
        res = dep.result if dep is not None and dep.task.status in FAILED else None
        if res is None or res.finished_at is None:
            continue
        t = rec.finished if rec.finished is not None else res.finished_at
        own = TaskResult(  # the shape of ResultRecord.result(..., cascaded=True)
            task_id=rec.task.id,
            status=TaskStatus.CANCELLED,
            error=ErrorInfo.from_exception(TaskCancelledError(CASCADE_REASON)),
            attempts=rec.task.attempt,
            finished_at=t,
            expires_at=None if res.expires_at is None else t + (res.expires_at - res.finished_at),
            queue=rec.task.queue,
        )
        return _replace(rec, result=own)
    return rec
