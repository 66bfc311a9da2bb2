"""Turning a user's ``enqueue(func, args, kwargs, **options)`` into a Task."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, TypedDict

from omniq.config import Settings
from omniq.models import InvalidTaskError, Task, WorkerType, as_timestamp, now
from omniq.serialization import SerializationManager

__all__ = ["EnqueueOptions", "TaskSpec", "build_task", "task_ids"]

Callback = Task | Callable[..., Any] | str
"""A follow-up: a built Task, or a callable/import path run without arguments."""
TaskSpec = Callable[..., Any] | str


class EnqueueOptions(TypedDict, total=False):
    """The keyword options of ``enqueue``/``enqueue_sync``/``enqueue_many``/``build``
    (``**options: Unpack[EnqueueOptions]``), so editors and type checkers see one list;
    ``build_task`` takes the same keywords with their defaults (a test keeps them equal).

    ``queue`` (default: the setting), ``priority`` (higher runs first), ``eta`` (a
    timestamp or datetime) or ``delay`` (seconds or timedelta), ``ttl`` and ``timeout``
    (seconds or timedelta; 0 = none, None = the setting), ``max_retries`` and
    ``retry_delay`` (None = the settings), ``depends_on`` (tasks or ids),
    ``on_success``/``on_failure`` (follow-up tasks or callables), ``key`` (idempotency
    key of a live task), ``worker`` (worker type hint) and ``metadata``.
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
    key: str | None
    worker: WorkerType | str | None
    metadata: Mapping[str, Any] | None


def task_ids(refs: Iterable[Task | str] | Task | str | None) -> tuple[str, ...]:
    """Normalize ``depends_on`` (tasks or ids, one or many) to a tuple of distinct ids."""
    if refs is None:
        return ()
    if isinstance(refs, Task | str):
        refs = (refs,)
    out: list[str] = []
    for r in refs:
        if isinstance(r, Task):
            out.append(r.id)
        elif isinstance(r, str) and r:
            out.append(r)
        else:
            raise InvalidTaskError(f"depends_on takes tasks or task ids, got {r!r}")
    return tuple(dict.fromkeys(out))  # a dependency listed twice is one dependency


def _seconds(value: float | timedelta | None, name: str) -> float | None:
    if value is None:
        return None
    secs = value.total_seconds() if isinstance(value, timedelta) else float(value)
    if secs < 0:
        raise InvalidTaskError(f"{name} must be >= 0 seconds, got {secs}")
    return secs


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
    key: str | None = None,
    worker: WorkerType | str | None = None,
    metadata: Mapping[str, Any] | None = None,
    task_id: str | None = None,
) -> Task:
    """Validate options, apply the settings' defaults and serialize the call.

    ``ttl``/``timeout`` of 0 mean none; None means the configured default.
    """
    if isinstance(func, str):
        module, sep, qualname = func.partition(":")
        if not sep or not module or not qualname:
            raise InvalidTaskError(f"task path {func!r} must look like 'module:qualname'")
        path, func_payload = func, None
    else:
        path, func_payload = serializer.encode_callable(func)
    created = now()
    if eta is not None and delay is not None:
        raise InvalidTaskError("give eta or delay, not both")
    eta_ts: float | None
    if delay is not None:
        eta_ts = created + (_seconds(delay, "delay") or 0.0)
    else:
        try:
            eta_ts = as_timestamp(eta)
        except ValueError as exc:
            raise InvalidTaskError(str(exc)) from None
    ttl_s = _seconds(ttl, "ttl")
    if ttl_s is None:
        ttl_s = settings.task_ttl
    timeout_s = _seconds(timeout, "timeout")
    if timeout_s is None:
        timeout_s = settings.task_timeout
    retries = settings.retry_attempts if max_retries is None else max_retries
    if retries < 0:
        raise InvalidTaskError(f"max_retries must be >= 0, got {retries}")
    base = _seconds(retry_delay, "retry_delay")
    try:
        worker_type = WorkerType(worker) if worker is not None else None
    except ValueError:
        raise InvalidTaskError(
            f"worker={worker!r}: expected one of {', '.join(w.value for w in WorkerType)}"
        ) from None
    start = eta_ts if eta_ts is not None and eta_ts > created else created
    fields: dict[str, Any] = {}
    if task_id is not None:
        fields["id"] = task_id
    return Task(
        func=path,
        func_payload=func_payload,
        payload=serializer.dumps_call(tuple(args), dict(kwargs or {})),
        queue=queue or settings.default_queue,
        priority=int(priority),
        created_at=created,
        eta=eta_ts,
        expires_at=(start + ttl_s) if ttl_s else None,
        timeout=timeout_s or None,
        max_retries=retries,
        retry_delay=settings.retry_delay if base is None else base,
        retry_max_delay=settings.retry_max_delay,
        depends_on=task_ids(depends_on),
        on_success=_callbacks(serializer, settings, on_success),
        on_failure=_callbacks(serializer, settings, on_failure),
        worker=worker_type,
        key=key,
        metadata=dict(metadata or {}),
        **fields,
    )


def _callbacks(
    serializer: SerializationManager,
    settings: Settings,
    value: Callback | Sequence[Callback] | None,
) -> tuple[Task, ...]:
    if value is None:
        return ()
    items: Sequence[Callback] = (
        [value] if isinstance(value, Task | str) or callable(value) else value
    )
    out: list[Task] = []
    for item in items:
        out.append(item if isinstance(item, Task) else build_task(serializer, settings, item))
    return tuple(out)
