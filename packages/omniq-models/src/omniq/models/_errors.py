"""The OmniQ exception tree: one base users can catch, leaves named by condition."""

from __future__ import annotations

from typing import Any

from ._redact import redact_text
from ._result import ErrorInfo

__all__ = [
    "BackendUnavailableError",
    "ConfigError",
    "CorruptRecordError",
    "DependencyCycleError",
    "DependencyError",
    "InvalidTaskError",
    "MissingExtraError",
    "OmniQError",
    "PayloadTooLargeError",
    "RemoteTaskError",
    "ScheduleError",
    "SerializationError",
    "StorageError",
    "TaskCancelledError",
    "TaskExpiredError",
    "TaskTimeoutError",
    "TransactionalEnqueueError",
    "UnknownBackendError",
    "WorkerCrashedError",
]


class OmniQError(Exception):
    """Base of every error OmniQ raises on purpose; catch this to catch them all."""


class ConfigError(OmniQError, ValueError):
    """A setting has a value OmniQ cannot use.

    The message names the setting (or ``OMNIQ_*`` variable), the offending value and
    what would have been accepted, so a bad deployment fails at start-up, not mid-run.
    """

    def __init__(self, name: str, value: object, accepted: str, detail: str = "") -> None:
        self.name = name
        self.value = value
        self.accepted = accepted
        self.detail = detail
        shown = redact_text(repr(value)) if isinstance(value, str) else repr(value)
        msg = f"{name}={shown} is invalid: expected {accepted}"
        if detail:
            msg += f" ({detail})"
        super().__init__(msg)

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickle the constructor's arguments, not the formatted message (args[0]).
        return type(self), (self.name, self.value, self.accepted, self.detail), self.__dict__


class SerializationError(OmniQError):
    """A value could not be serialized, or a payload was refused on the way back.

    Refused payloads (unsigned, tampered, oversized, dill while dill is disabled) are
    never unpickled.
    """


class InvalidTaskError(OmniQError, ValueError):
    """A task was described in a way OmniQ cannot run (bad import path, bad option)."""


__all__ += ["WorkflowError"]


class WorkflowError(InvalidTaskError):
    """A chain or group was given tasks it cannot be built from: none, something other
    than a ``Task``, a task already stored, or a task whose own dependency options would
    conflict with the ones the chain or group sets."""


class ScheduleError(OmniQError, ValueError):
    """A schedule definition is invalid (bad cron expression, unknown time zone, ...)."""


class DependencyError(OmniQError):
    """A task's dependencies cannot be satisfied."""


class DependencyCycleError(DependencyError, ValueError):
    """Enqueueing the task would create a cycle in the dependency graph."""


class StorageError(OmniQError):
    """A storage backend failed or refused an operation."""


class BackendUnavailableError(StorageError, ConnectionError):
    """The storage engine cannot be reached right now; the operation may be retried."""


class UnknownBackendError(StorageError, ValueError):
    """A storage URL names a scheme no backend handles; the message lists the known ones."""


class MissingExtraError(StorageError, ImportError):
    """A backend's driver is not installed; the message names the extra to install."""


class PayloadTooLargeError(StorageError, ValueError):
    """A task or result is larger than the store accepts; nothing of its batch was stored.

    The limit is the smaller of ``OMNIQ_MAX_PAYLOAD_BYTES`` and the engine's own (NATS
    ``max_payload``, Redis ``proto-max-bulk-len``, ...). ``size`` and ``limit`` are in
    bytes; ``subject`` names what was refused (``task <id>``, ``result of task <id>``).
    """

    def __init__(self, message: str, *, subject: str = "", size: int = 0, limit: int = 0) -> None:
        self.subject = subject
        self.size = size
        self.limit = limit
        super().__init__(message)


class TransactionalEnqueueError(StorageError, TypeError):
    """An enqueue was given the caller's database ``connection`` that its task store cannot
    join: the backend keeps tasks outside that database (Redis, NATS, files, memory) or the
    connection is of a kind or database the backend does not write to. The message names
    the alternative: enqueue after the commit (or ``enqueue_on_commit`` under Django).
    """


class CorruptRecordError(StorageError):
    """A stored record does not decode (truncated, tampered, or foreign bytes).

    Nothing in it is run: a corrupt task is ended in ``error`` (a dead letter) with this
    error in its result, and reads skip it, so one bad record never holds its neighbours.
    """


class TaskTimeoutError(OmniQError, TimeoutError):
    """A task ran longer than its timeout and was stopped."""


class TaskExpiredError(OmniQError):
    """A task reached its TTL before it started; it was not run."""


class TaskCancelledError(OmniQError):
    """A task was cancelled before it finished."""


class WorkerCrashedError(OmniQError):
    """The process running a task died (killed, segfault, ``os._exit``) before reporting."""


class RemoteTaskError(OmniQError):
    """A task raised in a child process; ``info`` has its type name, message and traceback.

    The exception object itself stays in the child (it may not even be importable in
    the parent), so a process worker reports ``info`` as the task's error unchanged.
    """

    def __init__(self, info: ErrorInfo) -> None:
        self.info = info
        super().__init__(f"{info.type}: {info.message}")

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.info,), self.__dict__


__all__ += ["EventLoopError", "InvalidStateError"]


class InvalidStateError(OmniQError, RuntimeError):
    """A call does not fit the object's current state: a worker or scheduler started
    while it runs, joined while it does not, or OmniQ's async core read before it opened."""


class EventLoopError(OmniQError, RuntimeError):
    """A call was made on an event loop it cannot run on.

    A blocking call on the loop thread it would wait for (a deadlock), or a connection
    used from a loop other than the one it is bound to.
    """


__all__ += ["Fail", "NotInTaskError", "Retry", "TaskControl"]


class NotInTaskError(OmniQError, RuntimeError):
    """``omniq.current_task()`` was called outside a running task (no task context)."""


class TaskControl(OmniQError):
    """Base of the exceptions a task raises to steer its own outcome (``Retry``, ``Fail``).

    They are requests, not failures: a worker turns them into a retry or a final error
    without counting them against the function's circuit breaker.
    """


class Retry(TaskControl):
    """Raised by a task to run again: at once (``delay=None``) or after ``delay`` seconds.

    The run counts as an attempt: once the task's ``max_retries`` are used up, the task
    ends in ``error`` with this exception as its error, like any failure.
    """

    def __init__(self, delay: float | None = None, message: str = "") -> None:
        if delay is not None and not delay >= 0:
            raise InvalidTaskError(f"Retry delay must be a number >= 0, got {delay!r}")
        self.delay = delay
        self.message = message
        super().__init__(
            message or ("retry requested" if delay is None else f"retry in {delay:g} s")
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.delay, self.message), self.__dict__


class Fail(TaskControl):
    """Raised by a task to fail for good: the task ends in ``error`` at once, however many
    retries it has left (its ``on_failure`` follow-ups run as for any final error)."""


__all__ += ["TaskFailedError"]


class TaskFailedError(OmniQError):
    """A task run inline (``OmniQ(inline=True)``) ended in ``error``: ``task_id`` names
    it and ``info`` holds the error exactly as a worker recorded it (type name, message,
    traceback), so a test fails the way the task would fail on a real worker."""

    def __init__(self, task_id: str, func: str, info: ErrorInfo) -> None:
        self.task_id = task_id
        self.func = func
        self.info = info
        super().__init__(f"task {func} ({task_id}) failed: {info.type}: {info.message}")

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.task_id, self.func, self.info), self.__dict__
