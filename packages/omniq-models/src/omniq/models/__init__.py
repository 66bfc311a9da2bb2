"""OmniQ's shared data model: tasks, results, events, schedules, enums, errors, defaults.

This distribution depends only on msgspec and croniter (imported when a cron schedule
is evaluated), so it can be installed alone wherever the schemas are needed.
"""

from __future__ import annotations

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
    ConfigError,
    CorruptRecordError,
    DependencyCycleError,
    DependencyError,
    EventLoopError,
    Fail,
    InvalidStateError,
    InvalidTaskError,
    MissingExtraError,
    NotInTaskError,
    OmniQError,
    PayloadTooLargeError,
    RemoteTaskError,
    Retry,
    ScheduleError,
    SerializationError,
    StorageError,
    TaskCancelledError,
    TaskControl,
    TaskExpiredError,
    TaskFailedError,
    TaskTimeoutError,
    TransactionalEnqueueError,
    UnknownBackendError,
    WorkerCrashedError,
    WorkflowError,
)
from ._event import TaskEvent
from ._flow import (
    MAX_LIMIT,
    LimitInfo,
    LimitSpec,
    RateSpec,
    limit_of,
    parse_rate,
    unit_of,
    validate_max_concurrency,
)
from ._group import Group, GroupStatus
from ._ids import new_id
from ._queue import QueueInfo
from ._redact import redact_text, redact_url
from ._result import ErrorInfo, Progress, TaskResult
from ._schedule import Schedule, cron_next
from ._task import ClaimedTask, Payload, Task
from ._time import (
    ManualClock,
    TimeSource,
    get_clock,
    now,
    set_clock,
    skip_ahead,
    to_datetime,
    use_clock,
)
from ._unique import ARGS_KEY, ON_CONFLICT, args_key, validate_unique
from ._validation import (
    MAX_HORIZON_SECONDS,
    MAX_ID_LENGTH,
    MAX_KEY_LENGTH,
    MAX_RETRIES,
    PRIORITY_MAX,
    PRIORITY_MIN,
    as_timestamp,
    validate_key,
    validate_metadata,
    validate_queue_name,
    validate_task,
    validate_task_id,
)
from ._workers import WorkerInfo
from .lowlevel import publish

__all__ = [
    "ARGS_KEY",
    "MAX_HORIZON_SECONDS",
    "MAX_ID_LENGTH",
    "MAX_KEY_LENGTH",
    "MAX_LIMIT",
    "MAX_RETRIES",
    "ON_CONFLICT",
    "PRIORITY_MAX",
    "PRIORITY_MIN",
    "TERMINAL_STATUSES",
    "BackendUnavailableError",
    "ClaimedTask",
    "ConfigError",
    "CorruptRecordError",
    "DependencyCycleError",
    "DependencyError",
    "ErrorInfo",
    "EventLoopError",
    "EventType",
    "Fail",
    "Group",
    "GroupStatus",
    "InvalidStateError",
    "InvalidTaskError",
    "LimitInfo",
    "LimitSpec",
    "ManualClock",
    "MisfirePolicy",
    "MissingExtraError",
    "NotInTaskError",
    "OmniQError",
    "Payload",
    "PayloadTooLargeError",
    "Progress",
    "QueueInfo",
    "RateSpec",
    "RemoteTaskError",
    "Retry",
    "Schedule",
    "ScheduleError",
    "ScheduleKind",
    "ScheduleState",
    "SerializationError",
    "StorageError",
    "Task",
    "TaskCancelledError",
    "TaskControl",
    "TaskEvent",
    "TaskExpiredError",
    "TaskFailedError",
    "TaskResult",
    "TaskStatus",
    "TaskTimeoutError",
    "TimeSource",
    "TransactionalEnqueueError",
    "UnknownBackendError",
    "WorkerCrashedError",
    "WorkerInfo",
    "WorkerType",
    "WorkflowError",
    "args_key",
    "as_timestamp",
    "cron_next",
    "get_clock",
    "limit_of",
    "new_id",
    "now",
    "parse_rate",
    "redact_text",
    "redact_url",
    "set_clock",
    "settings",
    "skip_ahead",
    "to_datetime",
    "unit_of",
    "use_clock",
    "validate_key",
    "validate_max_concurrency",
    "validate_metadata",
    "validate_queue_name",
    "validate_task",
    "validate_task_id",
    "validate_unique",
]

# Show public names as omniq.models.X so the private modules can move freely.
publish(globals())
del publish
