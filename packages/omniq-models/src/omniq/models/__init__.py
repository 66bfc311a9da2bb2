"""OmniQ's shared data model: tasks, results, events, schedules, enums, errors, defaults.

This distribution depends only on msgspec and croniter (imported when a cron schedule
is evaluated), so it can be installed alone wherever the schemas are needed.
"""

from __future__ import annotations

import msgspec

from . import _settings as settings
from ._enums import (
    TERMINAL_STATUSES,
    EventType,
    MisfirePolicy,
    ScheduleKind,
    ScheduleState,
    TaskStatus,
    WorkerType,
)
from ._errors import (
    BackendUnavailableError,
    CircuitOpenError,
    ConfigError,
    DependencyCycleError,
    DependencyError,
    EventLoopError,
    InvalidStateError,
    InvalidTaskError,
    MissingExtraError,
    OmniQError,
    ScheduleError,
    SerializationError,
    StaleLeaseError,
    StorageError,
    TaskCancelledError,
    TaskExpiredError,
    TaskNotFoundError,
    TaskTimeoutError,
    UnknownBackendError,
    WorkerCrashedError,
)
from ._event import TaskEvent
from ._ids import new_id
from ._result import ErrorInfo, TaskResult
from ._schedule import Schedule, cron_next
from ._task import ClaimedTask, Payload, Task
from ._time import as_timestamp, now, to_datetime

__all__ = [
    "TERMINAL_STATUSES",
    "BackendUnavailableError",
    "CircuitOpenError",
    "ClaimedTask",
    "ConfigError",
    "DependencyCycleError",
    "DependencyError",
    "ErrorInfo",
    "EventLoopError",
    "EventType",
    "InvalidStateError",
    "InvalidTaskError",
    "MisfirePolicy",
    "MissingExtraError",
    "OmniQError",
    "Payload",
    "Schedule",
    "ScheduleError",
    "ScheduleKind",
    "ScheduleState",
    "SerializationError",
    "StaleLeaseError",
    "StorageError",
    "Task",
    "TaskCancelledError",
    "TaskEvent",
    "TaskExpiredError",
    "TaskNotFoundError",
    "TaskResult",
    "TaskStatus",
    "TaskTimeoutError",
    "UnknownBackendError",
    "WorkerCrashedError",
    "WorkerType",
    "as_timestamp",
    "cron_next",
    "new_id",
    "now",
    "settings",
    "to_datetime",
]

# Show errors and enums as omniq.models.X so the private modules can move freely.
# (Not msgspec Structs: msgspec resolves their annotations in their defining module.)
for _name in __all__:
    _obj = globals()[_name]
    if isinstance(_obj, type) and issubclass(_obj, msgspec.Struct):
        continue
    if getattr(_obj, "__module__", "").startswith("omniq.models._"):
        _obj.__module__ = __name__
del _name, _obj
