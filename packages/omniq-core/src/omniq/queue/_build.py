"""Turning a user's ``enqueue(func, args, kwargs, **options)`` into a Task."""

from __future__ import annotations

import functools
import math
import numbers
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, TypedDict

from omniq.config import Settings
from omniq.models import (
    ARGS_KEY,
    MAX_HORIZON_SECONDS,
    MAX_RETRIES,
    PRIORITY_MAX,
    PRIORITY_MIN,
    InvalidTaskError,
    Task,
    WorkerType,
    args_key,
    now,
    parse_rate,
    validate_key,
    validate_max_concurrency,
    validate_metadata,
    validate_queue_name,
    validate_task,
    validate_task_id,
    validate_unique,
)
from omniq.serialization import SerializationManager

__all__ = ["EnqueueOptions", "TaskSpec", "build_task", "task_ids"]

Callback = Task | Callable[..., Any] | str
"""A follow-up: a built Task, or a callable/import path. An ``on_success`` callable runs
without arguments; an ``on_failure`` one (like every ``on_failure`` task) receives the
failed task's ``TaskResult`` as a mapping of its fields first."""
TaskSpec = Callable[..., Any] | str


class EnqueueOptions(TypedDict, total=False):
    """The keyword options of ``enqueue``/``enqueue_sync``/``enqueue_many``/``build``
    (``**options: Unpack[EnqueueOptions]``), so editors and type checkers see one list;
    ``build_task`` takes the same keywords with their defaults (a test keeps them equal).

    ``queue`` (default: the setting), ``priority`` (higher runs first), ``eta`` (a
    timestamp or datetime) or ``delay`` (seconds or timedelta), ``ttl`` and ``timeout``
    (seconds or timedelta; 0 = none, None = the setting), ``max_retries`` and
    ``retry_delay`` (None = the settings), ``depends_on`` (tasks or ids),
    ``on_success``/``on_failure`` (follow-up tasks or callables), ``pass_results`` (call
    it with its dependencies' values first, ``Task.pass_results``), ``key`` (idempotency
    key of a live task; ``"args"`` derives it from the function and arguments),
    ``unique_for`` (seconds the key stays reserved after the first enqueue, finished
    or not), ``on_conflict`` (``"return"`` or ``"replace"``: debounce a pending task),
    ``worker`` (worker type hint) and ``metadata``.
    """

    queue: str | None
    priority: int
    eta: float | datetime | None
    delay: float | timedelta | None
    ttl: float | timedelta | None
    timeout: float | timedelta | None
    max_retries: int | None
    retry_delay: float | timedelta | None
    depends_on: Iterable[Task | str] | Task | str | None
    on_success: Callback | Sequence[Callback] | None
    on_failure: Callback | Sequence[Callback] | None
    pass_results: bool
    key: str | None
    worker: WorkerType | str | None
    metadata: Mapping[str, Any] | None
    rate_limit: str | None
    max_concurrency: int | None
    limit_key: str | None
    unique_for: float | timedelta | None
    on_conflict: str | None


def _flag(value: object, name: str) -> bool:
    if not isinstance(value, bool):
        raise InvalidTaskError(f"{name}={value!r}: expected True or False")
    return value


def task_ids(refs: Iterable[Task | str] | Task | str | None) -> tuple[str, ...]:
    """Normalize ``depends_on`` (tasks or ids, one or many) to a tuple of distinct ids.

    Raises InvalidTaskError for anything else, or for an id outside the task id rules
    (``omniq.models.validate_task_id``)."""
    if refs is None:
        return ()
    if isinstance(refs, Task | str):
        refs = (refs,)
    elif isinstance(refs, bytes | bytearray | Mapping) or not isinstance(refs, Iterable):
        raise InvalidTaskError(
            f"depends_on takes a task, a task id or an iterable of them, got {_kind(refs)}"
        )
    out: list[str] = []
    for r in refs:
        if isinstance(r, Task):
            out.append(validate_task_id(r.id, "depends_on id"))
        elif isinstance(r, str):
            out.append(validate_task_id(r, "depends_on id"))
        else:
            raise InvalidTaskError(f"depends_on takes tasks or task ids, got {_kind(r)}")
    return tuple(dict.fromkeys(out))  # a dependency listed twice is one dependency


def _kind(value: object) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 60 else text[:57] + '...'}"


def _number(value: object, name: str) -> float:
    """A finite float from an int/float (not bool), else InvalidTaskError."""
    if not isinstance(value, bool) and isinstance(value, numbers.Real):
        try:
            f = float(value)
        except (OverflowError, ValueError):
            f = math.inf
        if math.isfinite(f):
            return f
        raise InvalidTaskError(f"{name}={value!r} is not a finite number")
    raise InvalidTaskError(f"{name} must be a number, got {_kind(value)}")


def _seconds(value: object, name: str) -> float | None:
    """A duration: None, a timedelta or a number of seconds in [0, MAX_HORIZON_SECONDS]."""
    if value is None:
        return None
    secs = value.total_seconds() if isinstance(value, timedelta) else _number(value, f"{name}")
    if not 0 <= secs <= MAX_HORIZON_SECONDS:
        raise InvalidTaskError(
            f"{name}={secs!r} seconds is out of bounds: expected 0 to {MAX_HORIZON_SECONDS:.0f}"
            " (100 years)"
        )
    return secs


def _eta(value: object, created: float) -> float | None:
    """An instant: None, an aware datetime or Unix seconds, from 0 up to 100 years ahead."""
    if value is None:
        return None
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise InvalidTaskError(
                f"eta: naive datetime {value.isoformat()} is ambiguous; give it a tzinfo"
            )
        try:
            ts = value.timestamp()
        except (OverflowError, ValueError, OSError) as exc:
            raise InvalidTaskError(f"eta={value!r} cannot be converted: {exc}") from None
    else:
        ts = _number(value, "eta")
    if not 0 <= ts <= created + MAX_HORIZON_SECONDS:
        raise InvalidTaskError(
            f"eta={ts!r} is out of bounds: expected Unix seconds from 0 to now + 100 years"
        )
    return ts


def _integer(value: object, name: str, low: int, high: int) -> int:
    if type(value) is int and low <= value <= high:  # the common case, without the ABC check
        return value
    if not isinstance(value, bool) and isinstance(value, numbers.Integral):
        n = int(value)
        if low <= n <= high:
            return n
        raise InvalidTaskError(f"{name}={n} is out of bounds: expected {low} to {high}")
    raise InvalidTaskError(f"{name} must be an int from {low} to {high}, got {_kind(value)}")


@functools.lru_cache(maxsize=1024)
def _func_path(func: str) -> str:
    module, sep, qualname = func.partition(":")
    parts = [*module.split("."), *qualname.split(".")]
    if not sep or not all(p.isidentifier() for p in parts):
        raise InvalidTaskError(
            f"task path {func[:200]!r} must look like 'module:qualname' (dotted Python names)"
        )
    return func


def _call(args: object, kwargs: object) -> tuple[tuple[Any, ...], dict[str, Any]]:
    if not isinstance(args, list | tuple):
        raise InvalidTaskError(
            f"args must be a list or tuple of arguments, got {_kind(args)}"
            + ("; for one string argument write args=(value,)" if isinstance(args, str) else "")
        )
    if kwargs is None:
        return tuple(args), {}
    if not isinstance(kwargs, Mapping):
        raise InvalidTaskError(f"kwargs must be a dict, got {_kind(kwargs)}")
    for name in kwargs:
        if not isinstance(name, str):
            raise InvalidTaskError(f"kwargs keys must be str, got {_kind(name)}")
    return tuple(args), dict(kwargs)


def build_task(
    serializer: SerializationManager,
    settings: Settings,
    func: TaskSpec,
    args: Sequence[Any] = (),
    kwargs: Mapping[str, Any] | None = None,
    *,
    queue: str | None = None,
    priority: int = 0,
    eta: float | datetime | None = None,
    delay: float | timedelta | None = None,
    ttl: float | timedelta | None = None,
    timeout: float | timedelta | None = None,
    max_retries: int | None = None,
    retry_delay: float | timedelta | None = None,
    depends_on: Iterable[Task | str] | Task | str | None = None,
    on_success: Callback | Sequence[Callback] | None = None,
    on_failure: Callback | Sequence[Callback] | None = None,
    pass_results: bool = False,
    key: str | None = None,
    worker: WorkerType | str | None = None,
    metadata: Mapping[str, Any] | None = None,
    rate_limit: str | None = None,
    max_concurrency: int | None = None,
    limit_key: str | None = None,
    unique_for: float | timedelta | None = None,
    on_conflict: str | None = None,
    task_id: str | None = None,
) -> Task:
    """Validate options, apply the settings' defaults and serialize the call.

    ``ttl``/``timeout`` of 0 mean none; None means the configured default. Every option
    is checked for type and range (docs/configuration.md, "Task option rules"): a bad
    one raises InvalidTaskError naming it and what is accepted; arguments that cannot
    be serialized raise SerializationError.
    """
    if isinstance(func, str):
        path, func_payload = _func_path(func), None
    else:
        path, func_payload = serializer.encode_callable(func)
    created = now()
    if (
        type(priority) is int
        and priority == 0
        and eta is None
        and delay is None
        and ttl is None
        and timeout is None
        and max_retries is None
        and retry_delay is None
        and depends_on is None
        and on_success is None
        and on_failure is None
        and pass_results is False
        and key is None
        and worker is None
        and metadata is None
        and rate_limit is None
        and max_concurrency is None
        and limit_key is None
        and unique_for is None
        and on_conflict is None
        and task_id is None
    ):
        # No option but ``queue``: the settings' defaults, nothing else to check (the
        # same Task as below; tests/ compares the two paths).
        call_args, call_kwargs = _call(args, kwargs)
        ttl_default = settings.task_ttl
        return Task(
            func=path,
            func_payload=func_payload,
            payload=serializer.dumps_call(call_args, call_kwargs),
            queue=settings.default_queue if queue is None else validate_queue_name(queue),
            created_at=created,
            expires_at=(created + ttl_default) if ttl_default else None,
            timeout=settings.task_timeout or None,
            max_retries=settings.retry_attempts,
            retry_delay=settings.retry_delay,
            retry_max_delay=settings.retry_max_delay,
        )
    if eta is not None and delay is not None:
        raise InvalidTaskError("give eta or delay, not both")
    eta_ts: float | None
    if delay is not None:
        eta_ts = created + (_seconds(delay, "delay") or 0.0)
    else:
        eta_ts = _eta(eta, created)
    ttl_s = _seconds(ttl, "ttl")
    if ttl_s is None:
        ttl_s = settings.task_ttl
    timeout_s = _seconds(timeout, "timeout")
    if timeout_s is None:
        timeout_s = settings.task_timeout
    retries = (
        settings.retry_attempts
        if max_retries is None
        else _integer(max_retries, "max_retries", 0, MAX_RETRIES)
    )
    base = _seconds(retry_delay, "retry_delay")
    try:
        worker_type = WorkerType(worker) if worker is not None else None
    except (ValueError, TypeError):
        raise InvalidTaskError(
            f"worker={worker!r}: expected one of {', '.join(w.value for w in WorkerType)}"
        ) from None
    call_args, call_kwargs = _call(args, kwargs)
    start = eta_ts if eta_ts is not None and eta_ts > created else created
    fields: dict[str, Any] = {}
    if task_id is not None:
        fields["id"] = validate_task_id(task_id)
    fields.update(limit_fields(rate_limit, max_concurrency, limit_key))
    if key == ARGS_KEY:
        key = args_key(path, call_args, call_kwargs)
    fields.update(unique_fields(unique_for, on_conflict, key))
    task = Task(
        func=path,
        func_payload=func_payload,
        payload=serializer.dumps_call(call_args, call_kwargs),
        queue=settings.default_queue if queue is None else validate_queue_name(queue),
        priority=_integer(priority, "priority", PRIORITY_MIN, PRIORITY_MAX),
        created_at=created,
        eta=eta_ts,
        expires_at=(start + ttl_s) if ttl_s else None,
        timeout=timeout_s or None,
        max_retries=retries,
        retry_delay=settings.retry_delay if base is None else base,
        retry_max_delay=settings.retry_max_delay,
        depends_on=task_ids(depends_on),
        on_success=_callbacks(serializer, settings, on_success, "on_success"),
        on_failure=_callbacks(serializer, settings, on_failure, "on_failure"),
        pass_results=_flag(pass_results, "pass_results"),
        worker=worker_type,
        key=None if key is None else validate_key(key),
        metadata={} if metadata is None else validate_metadata(metadata),
        **fields,
    )
    return task  # every field was checked on the way in (tests/fuzz checks the result)


def unique_fields(
    unique_for: float | timedelta | None, on_conflict: str | None, key: str | None
) -> dict[str, Any]:
    """The Task fields of ``unique_for``/``on_conflict``, checked (InvalidTaskError for
    a negative window, an unknown ``on_conflict`` or either without a key)."""
    window = unique_for.total_seconds() if isinstance(unique_for, timedelta) else unique_for
    validate_unique(window, on_conflict, key)
    out: dict[str, Any] = {}
    if window is not None:
        out["unique_for"] = float(window)
    if on_conflict == "replace":
        out["on_conflict"] = on_conflict
    return out


def limit_fields(
    rate_limit: str | None, max_concurrency: int | None, limit_key: str | None
) -> dict[str, Any]:
    """The Task fields of the flow-limit options, checked (InvalidTaskError for a bad
    spec such as ``"10/x"``); a ``limit_key`` without a limit is refused too."""
    out: dict[str, Any] = {}
    if rate_limit is not None:
        parse_rate(rate_limit)
        out["rate_limit"] = rate_limit.strip().replace(" ", "")
    if max_concurrency is not None:
        out["max_concurrency"] = validate_max_concurrency(max_concurrency)
    if limit_key is not None:
        if not out:
            raise InvalidTaskError("limit_key needs rate_limit or max_concurrency")
        out["limit_key"] = validate_key(limit_key, "limit_key")
    return out


def _callbacks(
    serializer: SerializationManager,
    settings: Settings,
    value: Callback | Sequence[Callback] | None,
    name: str,
) -> tuple[Task, ...]:
    if value is None:
        return ()
    items: Sequence[Callback]
    if isinstance(value, Task | str) or callable(value):
        items = [value]
    elif isinstance(value, list | tuple):
        items = value
    else:
        raise InvalidTaskError(
            f"{name} takes a task, a callable, an import path or a list of them, got {_kind(value)}"
        )
    out: list[Task] = []
    for item in items:
        if isinstance(item, Task):
            out.append(validate_task(item))
        elif isinstance(item, str) or callable(item):
            out.append(build_task(serializer, settings, item))
        else:
            raise InvalidTaskError(
                f"{name} items are tasks, callables or import paths, got {_kind(item)}"
            )
    return tuple(out)
