"""The running task's context: ``current_task()`` inside a task, on every worker type.

The pool sets a ``TaskContext`` in a ContextVar for each run: async tasks see it in
their own asyncio task, thread and gevent workers run the function inside a copy of
the caller's context, and a process worker's child builds one from the request it
receives (its progress travels back to the parent over the child's socket).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextvars import ContextVar

from omniq.models import NotInTaskError, Progress, WorkerType, now

__all__ = ["ProgressSink", "TaskContext", "current_task", "current_task_or_none"]

ProgressSink = Callable[["TaskContext", Progress], None]
"""Receives each ``set_progress`` call (any thread); the pool keeps the latest per task
and writes it, fenced by the lease, at most about once a second."""


class TaskContext:
    """What a running task knows about itself: ``task_id``, ``attempt`` (1 for the first
    run), ``queue``, ``worker_id``, ``worker_type``, and whether it was ``cancelled``.

    ``cancelled`` turns true when ``cancel`` reaches the worker while the task runs. An
    async task is also interrupted (CancelledError at its next await), a process task's
    child is killed and a gevent greenlet killed; a thread cannot be interrupted, so a
    long-running thread task should check ``cancelled`` and return early.
    """

    __slots__ = (
        "_cancelled",
        "_event",
        "_sink",
        "attempt",
        "queue",
        "task_id",
        "worker_id",
        "worker_type",
    )

    def __init__(  # noqa: PLR0917
        self,
        task_id: str,
        attempt: int,
        queue: str,
        worker_id: str,
        worker_type: WorkerType | None = None,
        sink: ProgressSink | None = None,
    ) -> None:
        self.task_id = task_id
        self.attempt = attempt
        self.queue = queue
        self.worker_id = worker_id
        self.worker_type = worker_type
        self._sink = sink
        self._cancelled = False
        self._event: threading.Event | None = None  # made by the first wait_cancelled

    def __repr__(self) -> str:
        return (
            f"TaskContext(task_id={self.task_id!r}, attempt={self.attempt}, "
            f"queue={self.queue!r}, worker_id={self.worker_id!r}, cancelled={self.cancelled})"
        )

    @property
    def cancelled(self) -> bool:
        """True once the task was cancelled while running (see the class docstring)."""
        return self._cancelled

    def cancel(self) -> None:
        """Mark the task cancelled (the pool does this when ``cancel`` reaches it)."""
        self._cancelled = True
        event = self._event
        if event is not None:
            event.set()

    def wait_cancelled(self, timeout: float | None = None) -> bool:
        """Block (a thread task) up to ``timeout`` seconds until the task is cancelled;
        True if it was. A cancellable alternative to ``time.sleep`` in thread tasks."""
        event = self._event
        if event is None:
            event = self._event = threading.Event()
            if self._cancelled:  # cancelled before the event existed
                event.set()
        return event.wait(timeout)

    def set_progress(
        self, done: float, total: float | None = None, message: str | None = None
    ) -> None:
        """Record how far the task got. Cheap to call in a tight loop: the latest value
        is kept and stored (fenced by the task's lease) about once a second, readable
        with ``OmniQ.get_progress`` and ``omniq status <task id>``; each stored value
        also logs a PROGRESS event."""
        sink = self._sink
        if sink is not None:
            sink(self, Progress(done=done, total=total, message=message, updated_at=now()))


_current: ContextVar[TaskContext | None] = ContextVar("omniq_current_task", default=None)


def current_task() -> TaskContext:
    """The context of the task running in this coroutine, thread, greenlet or child
    process. Raises NotInTaskError outside a task (``current_task_or_none`` returns
    None instead)."""
    ctx = _current.get()
    if ctx is None:
        raise NotInTaskError(
            "current_task() was called outside a running OmniQ task (it works inside "
            "functions run by a worker)"
        )
    return ctx


def current_task_or_none() -> TaskContext | None:
    """The running task's context, or None outside a task."""
    return _current.get()


def set_current(ctx: TaskContext | None) -> object:
    """Set the context of this coroutine/thread (returns a token for ``reset_current``)."""
    return _current.set(ctx)


def reset_current(token: object) -> None:
    _current.reset(token)  # type: ignore[arg-type]
