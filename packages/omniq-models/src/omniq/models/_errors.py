"""The OmniQ exception tree: one base users can catch, leaves named by condition."""

from __future__ import annotations

__all__ = [
    "BackendUnavailableError",
    "CircuitOpenError",
    "ConfigError",
    "DependencyCycleError",
    "DependencyError",
    "InvalidTaskError",
    "MissingExtraError",
    "OmniQError",
    "ScheduleError",
    "SerializationError",
    "StaleLeaseError",
    "StorageError",
    "TaskCancelledError",
    "TaskExpiredError",
    "TaskNotFoundError",
    "TaskTimeoutError",
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
        msg = f"{name}={value!r} is invalid: expected {accepted}"
        if detail:
            msg += f" ({detail})"
        super().__init__(msg)


class SerializationError(OmniQError):
    """A value could not be serialized, or a payload was refused on the way back.

    Refused payloads (unsigned, tampered, oversized, dill while dill is disabled) are
    never unpickled.
    """


class InvalidTaskError(OmniQError, ValueError):
    """A task was described in a way OmniQ cannot run (bad import path, bad option)."""


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


class StaleLeaseError(StorageError):
    """A worker acted on a task whose lease it no longer holds (the fencing token is stale).

    Raised when a complete/renew/retry arrives from a worker whose lease expired and was
    reclaimed by another: its outcome must not overwrite the new owner's.
    """


class TaskNotFoundError(StorageError, KeyError):
    """No task with the given id exists in the store."""

    def __str__(self) -> str:  # KeyError quotes its argument; keep the message readable
        return str(self.args[0]) if self.args else "task not found"


class TaskTimeoutError(OmniQError, TimeoutError):
    """A task ran longer than its timeout and was stopped."""


class TaskExpiredError(OmniQError):
    """A task reached its TTL before it started; it was not run."""


class TaskCancelledError(OmniQError):
    """A task was cancelled before it finished."""


class WorkerCrashedError(OmniQError):
    """The process running a task died (killed, segfault, ``os._exit``) before reporting."""


class CircuitOpenError(OmniQError):
    """A circuit breaker is open: calls are deferred until its cool-down ends."""


__all__ += ["EventLoopError", "InvalidStateError"]


class InvalidStateError(OmniQError, RuntimeError):
    """A call does not fit the object's current state: a worker or scheduler started
    while it runs, joined while it does not, or OmniQ's async core read before it opened."""


class EventLoopError(OmniQError, RuntimeError):
    """A call was made on an event loop it cannot run on.

    A blocking call on the loop thread it would wait for (a deadlock), or a connection
    used from a loop other than the one it is bound to.
    """
