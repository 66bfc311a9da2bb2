"""The rules every task must meet: id and queue name syntax, numeric bounds.

One place states them so that the task builder, the settings and the storage engines
agree. A value outside these rules raises InvalidTaskError naming the option and what
would have been accepted; nothing out of bounds ever reaches an engine.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from ._errors import InvalidTaskError
from ._flow import parse_rate, validate_max_concurrency
from ._task import Task
from ._time import now
from ._unique import validate_unique

__all__ = [
    "MAX_HORIZON_SECONDS",
    "MAX_ID_LENGTH",
    "MAX_KEY_LENGTH",
    "MAX_RETRIES",
    "PRIORITY_MAX",
    "PRIORITY_MIN",
    "as_timestamp",
    "validate_key",
    "validate_metadata",
    "validate_queue_name",
    "validate_task",
    "validate_task_id",
]

MAX_ID_LENGTH = 128
"""Longest task id or queue name, in characters."""
MAX_KEY_LENGTH = 512
"""Longest idempotency key, in characters."""
PRIORITY_MIN = -(2**31)
"""Lowest priority: the range every engine stores exactly (a PostgreSQL ``integer``)."""
PRIORITY_MAX = 2**31 - 1
"""Highest priority."""
MAX_RETRIES = 10_000
"""Most retries one task may ask for."""
MAX_HORIZON_SECONDS = 100 * 365.25 * 86400.0
"""Farthest ahead (100 years) an eta, delay, ttl, timeout or retry delay may reach, so
that expiry arithmetic stays far inside what a datetime can show."""
_MAX_METADATA_DEPTH = 32
_INT64 = (-(2**63), 2**64 - 1)  # what msgpack encodes as an integer
_INT32 = 2**31 - 1  # the attempt counter is a PostgreSQL integer

_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._:-]*")
_NAME_RULE = (
    f"1 to {MAX_ID_LENGTH} characters from A-Z a-z 0-9 . _ : -, starting with a letter, digit or _"
)


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _name(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise InvalidTaskError(f"{what} must be a str ({_NAME_RULE}), got {type(value).__name__}")
    if len(value) > MAX_ID_LENGTH or not _NAME.fullmatch(value):
        raise InvalidTaskError(f"{what} {_shown(value)} is invalid: expected {_NAME_RULE}")
    return value


def validate_task_id(value: object, what: str = "task id") -> str:
    """Return ``value`` if it is a valid task id, else raise InvalidTaskError.

    A task id is 1 to 128 characters from ``A-Z a-z 0-9 . _ : -`` and does not start
    with ``.`` or ``-``: so it is safe as a file name (no ``/``, ``\\``, ``.``, ``..``),
    a Redis key part and a NATS subject token. Generated ids (``new_id``) always pass.
    ``what`` names the value in the message (``"depends_on id"``, ...).
    """
    return _name(value, what)


def validate_queue_name(value: object, what: str = "queue") -> str:
    """Return ``value`` if it is a valid queue name (the task id rules), else raise
    InvalidTaskError."""
    return _name(value, what)


def validate_key(value: object, what: str = "key") -> str:
    """Return ``value`` if it is a valid idempotency key, else raise InvalidTaskError.

    A key is opaque text (``"report:2026-12-01"``, ``"user@example.com"``): 1 to 512
    characters, no NUL and no lone surrogates, since every engine stores it as text.
    """
    if not isinstance(value, str):
        raise InvalidTaskError(f"{what} must be a str, got {type(value).__name__}")
    if not 1 <= len(value) <= MAX_KEY_LENGTH:
        raise InvalidTaskError(f"{what} must be 1 to {MAX_KEY_LENGTH} characters, got {len(value)}")
    if not _plain_text(value):
        raise InvalidTaskError(f"{what} {_shown(value)} contains NUL or a lone surrogate")
    return value


def _plain_text(text: str) -> bool:
    """True if ``text`` can be stored as text by every engine: UTF-8, no NUL."""
    if "\x00" in text:
        return False
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def validate_metadata(value: object, what: str = "metadata") -> dict[str, Any]:
    """Return a copy of ``value`` if it is JSON-shaped metadata, else raise InvalidTaskError.

    Metadata is a mapping with str keys whose values are None, bool, int (64-bit), finite
    float, str, or lists/tuples/mappings of those (at most 32 levels deep): what every
    engine and the JSON event log can store and give back. Tuples come back as lists.
    """
    if not isinstance(value, Mapping):
        raise InvalidTaskError(
            f"{what} must be a mapping with str keys, got {type(value).__name__}"
        )
    out = _json_value(value, what, 0)
    assert isinstance(out, dict)
    return out


def _json_value(value: object, where: str, depth: int) -> Any:
    if depth > _MAX_METADATA_DEPTH:
        raise InvalidTaskError(f"{where} is nested more than {_MAX_METADATA_DEPTH} levels deep")
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        if not _INT64[0] <= value <= _INT64[1]:
            raise InvalidTaskError(f"{where}: integer {_shown(value)} does not fit in 64 bits")
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidTaskError(f"{where}: {value} is not a finite number")
        return float(value)
    if isinstance(value, str):
        if not _plain_text(value):
            raise InvalidTaskError(
                f"{where}: text {_shown(value)} contains NUL or a lone surrogate"
            )
        return str(value)
    if isinstance(value, list | tuple):
        return [_json_value(v, f"{where}[{i}]", depth + 1) for i, v in enumerate(value)]
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for k, v in value.items():
            if not isinstance(k, str) or not _plain_text(k):
                raise InvalidTaskError(f"{where}: key {_shown(k)} is not valid text")
            out[str(k)] = _json_value(v, f"{where}[{k!r}]", depth + 1)
        return out
    raise InvalidTaskError(
        f"{where}: {type(value).__name__} is not JSON-shaped "
        "(None, bool, int, float, str, list, dict)"
    )


def _number(value: float | None, what: str, low: float, high: float, *, none: bool) -> None:
    if value is None:
        if not none:
            raise InvalidTaskError(f"{what} must be a number")
        return
    if not (math.isfinite(value) and low <= value <= high):
        raise InvalidTaskError(f"{what}={value!r} is out of bounds: expected {low} to {high}")


def validate_task(task: Task, *, at: float | None = None) -> Task:
    """Return ``task`` if every field is within the documented bounds, else raise
    InvalidTaskError naming the field.

    The checks a store would otherwise fail on differently per engine: id, queue and
    dependency syntax, priority and retry bounds, finite times no more than
    ``MAX_HORIZON_SECONDS`` after ``at`` (default: now). Follow-up tasks are checked too.
    """
    t = now() if at is None else at
    validate_task_id(task.id)
    if not isinstance(task.func, str) or not task.func or not _plain_text(task.func):
        raise InvalidTaskError(f"func {_shown(task.func)} must be non-empty text")
    validate_queue_name(task.queue)
    for dep in task.depends_on:
        validate_task_id(dep, "depends_on id")
    if task.key is not None:
        validate_key(task.key)
    if task.rate_limit is not None or task.max_concurrency is not None:
        _check_limits(task)
    if task.unique_for is not None or task.on_conflict is not None:
        validate_unique(task.unique_for, task.on_conflict, task.key)
    if not _int(task.priority) or not PRIORITY_MIN <= task.priority <= PRIORITY_MAX:
        raise InvalidTaskError(
            f"priority={task.priority!r} is out of bounds: expected an int from "
            f"{PRIORITY_MIN} to {PRIORITY_MAX}"
        )
    counts = (("max_retries", task.max_retries, MAX_RETRIES), ("attempt", task.attempt, _INT32))
    for name, n, high in counts:
        if not _int(n) or not 0 <= n <= high:
            raise InvalidTaskError(
                f"{name}={n!r} is out of bounds: expected an int from 0 to {high}"
            )
    horizon = t + MAX_HORIZON_SECONDS
    times = (
        ("created_at", task.created_at, horizon, False),
        ("eta", task.eta, horizon, True),
        ("expires_at", task.expires_at, horizon + MAX_HORIZON_SECONDS, True),
        ("timeout", task.timeout, MAX_HORIZON_SECONDS, True),
        ("retry_delay", task.retry_delay, MAX_HORIZON_SECONDS, False),
        ("retry_max_delay", task.retry_max_delay, MAX_HORIZON_SECONDS, True),
    )
    for field, value, limit, none in times:
        # the common case in one comparison (NaN compares false, so it takes the slow path)
        if value is None or not 0.0 <= value <= limit:
            _number(value, field, 0.0, limit, none=none)
    if task.metadata:
        _json_value(task.metadata, "metadata", 0)
    for follow_up in (*task.on_success, *task.on_failure):
        validate_task(follow_up, at=t)
    return task


def _int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def as_timestamp(
    value: float | datetime | timedelta | None, *, base: float | None = None
) -> float | None:
    """Convert a user-given instant to Unix seconds.

    A datetime must be timezone-aware (a naive one is ambiguous across hosts); a
    timedelta is taken relative to ``base`` (default: now).
    """
    if value is None:
        return None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise InvalidTaskError(
                f"naive datetime {value.isoformat()} is ambiguous; give it a tzinfo"
            )
        return value.timestamp()
    if isinstance(value, timedelta):
        return (now() if base is None else base) + value.total_seconds()
    return float(value)


def _check_limits(task: Task) -> None:
    if task.rate_limit is not None:
        parse_rate(task.rate_limit)
    if task.max_concurrency is not None:
        validate_max_concurrency(task.max_concurrency)
    if task.limit_key is not None:
        validate_key(task.limit_key, "limit_key")
