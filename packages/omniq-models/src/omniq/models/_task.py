"""The task envelope and its serialized payloads."""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from ._enums import TaskStatus, WorkerType
from ._ids import new_id
from ._time import now

__all__ = ["ClaimedTask", "Payload", "Task"]


class Payload(msgspec.Struct, frozen=True, array_like=True):
    """Serialized bytes with the tag of the serializer that made them.

    ``format`` is ``"msgpack"`` for msgspec-encoded data or ``"dill"`` for signed dill
    data; ``omniq.serialization`` decides which, and refuses dill unless it is enabled.
    """

    format: str
    data: bytes


class Task(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True, eq=False):
    """One unit of work: what to call, with which arguments, and under which rules.

    Tasks are immutable; state changes produce copies (``msgspec.structs.replace``).
    Two tasks are equal, and hash alike, when their ids are equal, so they can sit in
    sets and dependency graphs.

    Times are Unix seconds. ``func`` is an import path ``"module:qualname"``;
    ``func_payload`` carries a serialized callable instead when dill is enabled.
    ``payload`` holds the serialized ``(args, kwargs)`` pair.
    """

    func: str
    payload: Payload | None = None
    id: str = msgspec.field(default_factory=new_id)
    func_payload: Payload | None = None
    queue: str = "default"
    priority: int = 0
    """Higher runs first; within one priority, first in first out."""
    created_at: float = msgspec.field(default_factory=now)
    eta: float | None = None
    """Earliest start time; None means as soon as possible."""
    expires_at: float | None = None
    """TTL as an instant: a task not started by then becomes ``expired`` and never runs."""
    timeout: float | None = None
    max_retries: int = 0
    retry_delay: float = 1.0
    """Base of the exponential backoff (full jitter) between attempts."""
    retry_max_delay: float | None = None
    attempt: int = 0
    """Attempts started so far; survives worker crashes because the store keeps it."""
    depends_on: tuple[str, ...] = ()
    on_success: tuple[Task, ...] = ()
    """Follow-up tasks enqueued when this one succeeds."""
    on_failure: tuple[Task, ...] = ()
    """Follow-up tasks enqueued when this one fails for good."""
    run_if: Literal["succeeded", "failed", "finished"] | None = None
    """None: the store's dependency policy decides when ``depends_on`` lets this task
    run. Set: the store releases it once every dependency has ended, whatever each
    ended in, and the worker runs it only if they all ``succeeded``, any ``failed``
    (error, cancelled or expired), or in any case (``finished``); otherwise it ends
    cancelled without running. Follow-ups and group callbacks are such tasks."""
    pass_results: bool = False
    """Call the function with its dependencies' results first: the value of its one
    dependency, or the list of values in ``depends_on`` order, fetched when it is
    claimed. With ``run_if`` ``failed`` or ``finished`` each is instead the dependency's
    ``TaskResult`` as a mapping of its fields (``task_id``, ``status``, ``value``,
    ``error``, ...), so failed dependencies are told apart."""
    worker: WorkerType | None = None
    key: str | None = None
    """Idempotency key: while a task with this key is live, enqueueing again returns it."""
    rate_limit: str | None = None
    """At most N starts per window (``"N/s"``, ``"N/m"``, ``"N/h"``) across all workers,
    shared by the tasks with the same ``limit_key``; enforced by the store's claim."""
    max_concurrency: int | None = None
    """At most this many running at once across all workers, per ``limit_key``."""
    limit_key: str | None = None
    """Which tasks share ``rate_limit``/``max_concurrency``; None means ``func``."""
    unique_for: float | None = None
    """Seconds after ``created_at`` during which ``key`` stays reserved by this task,
    whatever its state: an enqueue with the same key inside the window returns it."""
    on_conflict: str | None = None
    """What an enqueue meeting a task that holds ``key`` does: None (``"return"``) returns
    that task; ``"replace"`` first replaces its payload and eta if it is still pending."""
    status: TaskStatus = TaskStatus.PENDING
    """Filled in by the store when a task is read back."""
    metadata: dict[str, Any] = msgspec.field(default_factory=dict)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Task):
            return self.id == other.id
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.id)

    def is_expired(self, at: float | None = None) -> bool:
        """True if the task's TTL has passed at ``at`` (default: now)."""
        return self.expires_at is not None and (now() if at is None else at) >= self.expires_at

    def unique_until(self) -> float | None:
        """The instant the ``unique_for`` window on ``key`` ends (None: no window)."""
        if self.key is None or self.unique_for is None:
            return None
        return self.created_at + self.unique_for

    def holds_key(self, at: float | None = None) -> bool:
        """True if this task reserves its ``key`` at ``at`` (default: now): while it is
        live, and until ``unique_until`` whatever its state."""
        if self.key is None:
            return False
        if not self.status.is_terminal:
            return True
        until = self.unique_until()
        return until is not None and until > (now() if at is None else at)

    def is_due(self, at: float | None = None) -> bool:
        """True if the task may start at ``at`` (default: now)."""
        return self.eta is None or self.eta <= (now() if at is None else at)


class ClaimedTask(msgspec.Struct, frozen=True, kw_only=True):
    """A task leased to one worker.

    ``token`` is the fencing token: it changes on every claim, and a store refuses a
    renew/complete/retry whose token is no longer the current one (reported as stale).
    """

    task: Task
    token: str
    lease_expires_at: float
    worker_id: str
