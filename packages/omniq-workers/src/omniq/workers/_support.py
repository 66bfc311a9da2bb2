"""Pool internals: claim bookkeeping and outcome construction."""

from __future__ import annotations

import asyncio
import time
import traceback

from omniq.models import (
    ClaimedTask,
    ErrorInfo,
    Fail,
    InvalidTaskError,
    Retry,
    TaskCancelledError,
    TaskExpiredError,
    TaskStatus,
    TaskTimeoutError,
    WorkerCrashedError,
    WorkerType,
    now,
)

from ._context import TaskContext
from ._process import RemoteRetry, RemoteTaskError
from ._types import Outcome

QUEUED, RUNNING, DONE = 0, 1, 2
RELEASE, LOST, CANCEL = "release", "lost", "cancel"
_FAIL_TYPE = f"{Fail.__module__}.{Fail.__qualname__}"


class Entry:
    """One claimed task while the pool holds it."""

    __slots__ = ("claim", "ctx", "handle", "reason", "since", "state")

    def __init__(self, claim: ClaimedTask, since: float | None = None) -> None:
        self.claim = claim
        self.since = since
        """``time.monotonic()`` just before the claim that leased it was asked for (None:
        handed over outside a claim)."""
        self.state = QUEUED
        self.reason: str | None = None
        self.handle: asyncio.Task[None] | None = None
        self.ctx: TaskContext | None = None


def worker_type_of(value: object, what: str) -> WorkerType:
    try:
        return WorkerType(value)  # type: ignore[arg-type]
    except ValueError:
        accepted = ", ".join(w.value for w in WorkerType)
        raise InvalidTaskError(f"{what} {value!r} is not a worker type ({accepted})") from None


def expired_outcome(claim: ClaimedTask, wtype: WorkerType, at: float, worker_id: str) -> Outcome:
    """The outcome of a task whose TTL passed before it could start (it never ran)."""
    exc = TaskExpiredError(
        f"task {claim.task.id} expired at {claim.task.expires_at} before it started"
    )
    return Outcome(
        claimed=claim,
        status=TaskStatus.EXPIRED,
        error=ErrorInfo.from_exception(exc),
        finished_at=at,
        attempt=claim.task.attempt,
        worker_id=worker_id,
        worker_type=wtype,
    )


def failure_outcome(  # noqa: PLR0917
    worker_id: str,
    claim: ClaimedTask,
    wtype: WorkerType | None,
    started_at: float | None,
    t0: float,
    exc: BaseException,
) -> Outcome:
    if isinstance(exc, RemoteTaskError):
        info = exc.info
    else:
        tb = "".join(traceback.format_exception(exc))
        info = ErrorInfo.from_exception(exc, tb)
    cancelled = isinstance(exc, TaskCancelledError) or info.type.endswith("TaskCancelledError")
    retry_delay: float | None = None
    if isinstance(exc, Retry):
        retry_delay = exc.delay or 0.0
    elif isinstance(exc, RemoteRetry):
        retry_delay = max(0.0, exc.delay)
    final = isinstance(exc, Fail) or info.type == _FAIL_TYPE
    return Outcome(
        claimed=claim,
        status=TaskStatus.CANCELLED if cancelled else TaskStatus.ERROR,
        error=info,
        started_at=started_at,
        finished_at=now(),
        duration=time.perf_counter() - t0 if started_at is not None else 0.0,
        attempt=claim.task.attempt,
        worker_id=worker_id,
        worker_type=wtype,
        timed_out=isinstance(exc, TaskTimeoutError),
        crashed=isinstance(exc, WorkerCrashedError),
        retryable=not final,
        retry_delay=retry_delay,
    )


async def wait_first(a: asyncio.Event, b: asyncio.Event, timeout: float) -> None:  # noqa: ASYNC109
    loop = asyncio.get_running_loop()
    waits = [loop.create_task(a.wait()), loop.create_task(b.wait())]
    try:
        await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()
        await asyncio.gather(*waits, return_exceptions=True)
