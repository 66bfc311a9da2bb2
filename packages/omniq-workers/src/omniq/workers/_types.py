"""The seams between the pool and omniq-core: TaskSource, OutcomeSink, Outcome."""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from contextlib import AbstractContextManager
from typing import Protocol, runtime_checkable

import msgspec

from omniq.models import ClaimedTask, ErrorInfo, Payload, Progress, Task, TaskStatus, WorkerType

__all__ = [
    "CancelSource",
    "Outcome",
    "OutcomeSink",
    "PoolStats",
    "ProgressSource",
    "RunEndSource",
    "RunTracer",
    "TaskSource",
    "WorkerPresence",
]


class Outcome(msgspec.Struct, kw_only=True):
    """What happened to one claimed task; core turns it into results, events and retries.

    ``status`` is ``success``, ``error``, ``expired`` (TTL passed before start: the
    function never ran) or ``cancelled`` (the function raised TaskCancelledError or was
    cancelled from inside). ``value`` is the serialized return value, None when the
    function returned None. ``timed_out``/``crashed`` tell core why an ``error`` happened
    so it can apply its retry policy; ``error`` then names TaskTimeoutError or
    WorkerCrashedError. ``duration`` is measured on a monotonic clock. ``retryable`` is
    False for an ``error`` that no retry can cure: the task was refused before its
    function was imported (module outside the allow-list, malformed or ``__main__``
    path), so core records the error at once instead of retrying, and for a task that
    raised ``omniq.models.Fail``. ``retry_delay`` is set when the task raised
    ``omniq.models.Retry``: the delay it asked for (0.0 for at once); core then retries it
    after that delay instead of its backoff, while its retries last.
    """

    claimed: ClaimedTask
    status: TaskStatus
    value: Payload | None = None
    error: ErrorInfo | None = None
    started_at: float | None = None
    finished_at: float = 0.0
    duration: float = 0.0
    attempt: int = 0
    worker_id: str = ""
    worker_type: WorkerType | None = None
    timed_out: bool = False
    crashed: bool = False
    retryable: bool = True
    retry_delay: float | None = None

    @property
    def task_id(self) -> str:
        """The id of the task this outcome is about."""
        return self.claimed.task.id

    @property
    def ok(self) -> bool:
        """True if the task succeeded."""
        return self.status is TaskStatus.SUCCESS


@runtime_checkable
class TaskSource(Protocol):
    """Where the pool gets work. omniq-core implements it over a TaskQueueStorage.

    Every claim the pool receives ends in exactly one of: an Outcome given to the sink,
    a ``release`` (handed back unrun or unfinished on shutdown), or a lost lease (``renew``
    said so; the pool then reports nothing for it).
    """

    async def claim(self, limit: int) -> list[ClaimedTask]:
        """Lease up to ``limit`` due tasks to this worker; an empty list when none are due.

        The list may carry ``since``: ``time.monotonic()`` just before the store was
        asked (else the pool's own stamp from before the call is used); a rate-limited
        task starts only within its rate's guard of it."""
        ...

    async def renew(self, claims: Sequence[ClaimedTask]) -> set[str]:
        """Extend the leases of ``claims``; return the ids whose lease was lost."""
        ...

    async def release(self, claims: Sequence[ClaimedTask]) -> None:
        """Hand back tasks this worker will not finish, so another worker can run them."""
        ...

    async def wait_for_work(self, timeout: float) -> bool:  # noqa: ASYNC109
        """Block until work may be available (True) or ``timeout`` seconds pass (False)."""
        ...


@runtime_checkable
class ProgressSource(Protocol):
    """A TaskSource that can store the progress tasks report (``set_progress``)."""

    async def set_progress(self, updates: Sequence[tuple[ClaimedTask, Progress]]) -> set[str]:
        """Store the latest progress of these held tasks, fenced by their leases (and
        renewing them); return the ids whose lease was lost (nothing stored for them)."""
        ...


@runtime_checkable
class CancelSource(Protocol):
    """A TaskSource that tells the pool when ``cancel`` ended a task it holds."""

    async def watch_cancels(
        self, running: Callable[[], Collection[str]], on_cancel: Callable[[list[str]], None]
    ) -> None:
        """Run until cancelled, calling ``on_cancel(ids)`` on the pool's loop with the ids
        among ``running()`` that were cancelled, as promptly as the store allows."""
        ...


@runtime_checkable
class RunEndSource(Protocol):
    """A TaskSource told the moment a run ends, before its outcome is reported (which
    the pool batches): omniq-core starts the task it claimed ahead for a capped task's
    slot there, without waiting for the store."""

    def run_ended(self, outcome: Outcome) -> None:
        """``outcome``'s run is over (called on the pool's loop; must not block)."""
        ...


@runtime_checkable
class OutcomeSink(Protocol):
    """Where the pool sends what it did, in batches, in order (``started`` first)."""

    async def started(self, claims: Sequence[ClaimedTask]) -> None:
        """These tasks started executing (core logs EXECUTING)."""
        ...

    async def report(self, outcomes: Sequence[Outcome]) -> None:
        """These tasks finished (or expired unstarted); record results and apply policy."""
        ...


@runtime_checkable
class WorkerPresence(Protocol):
    """How a pool keeps its entry in the worker registry (omniq-core writes it).

    The pool calls ``beat`` when it starts and on every lease renewal tick, with the ids
    of the tasks it is running then, and ``leave`` once when it has shut down cleanly.
    A failing call is logged and never stops the pool.
    """

    async def beat(self, running: Sequence[str]) -> None:
        """Create or refresh this worker's entry, listing ``running``."""
        ...

    async def leave(self) -> None:
        """Remove this worker's entry (a clean shutdown)."""
        ...


@runtime_checkable
class RunTracer(Protocol):
    """Wraps each run of a task's function (omniq-core implements it with OpenTelemetry).

    The pool enters ``run(task)`` on the run's own asyncio task just before the function
    is called and leaves it when the call returns or raises (the exception passes
    through the context manager), so context variables it sets are seen by the function
    on async, thread and gevent workers.
    """

    def run(self, task: Task) -> AbstractContextManager[object]:
        """A context manager around one run of ``task``."""
        ...


class PoolStats(msgspec.Struct, kw_only=True):
    """Counters of one pool run, for tests, benchmarks and health checks."""

    claimed: int = 0
    started: int = 0
    succeeded: int = 0
    failed: int = 0
    expired: int = 0
    cancelled: int = 0
    timed_out: int = 0
    crashed: int = 0
    released: int = 0
    late_starts: int = 0
    """Rate-limited tasks released unstarted because they could not start within their
    rate's guard of the claim (also counted in ``released``)."""
    leases_lost: int = 0
    cancels: int = 0
    """Running (or queued) tasks stopped because ``cancel`` reached this worker."""
    source_errors: int = 0
    sink_errors: int = 0
