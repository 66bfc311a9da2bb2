"""The common worker interface and the slot gate that bounds each worker's concurrency."""

from __future__ import annotations

import abc
import asyncio
import itertools
import math
from collections import deque
from collections.abc import Callable
from types import TracebackType
from typing import Any, ClassVar, Self

from omniq.models import InvalidTaskError, TaskTimeoutError, WorkerType

__all__ = ["Deadline", "Deadlines", "Worker"]


class Gate:
    """A counting slot gate (like a semaphore) that can also lend a slot to a straggler.

    Threads and CPU-bound greenlets cannot be stopped: when one outlives its timeout the
    caller is answered at the deadline, but the slot stays taken (``hold``) until the
    straggler really ends, so the configured bound on running code is never exceeded.
    All methods run on the event loop thread.
    """

    __slots__ = ("_waiters", "active", "limit")

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise InvalidTaskError(f"a worker needs at least one slot, got {limit}")
        self.limit = limit
        self.active = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    @property
    def free(self) -> int:
        """Slots available right now."""
        return self.limit - self.active

    def try_acquire(self) -> bool:
        """Take a slot if one is free and nobody is queued ahead."""
        if self.active < self.limit and not self._waiters:
            self.active += 1
            return True
        return False

    async def acquire(self) -> None:
        """Wait for a slot (first come, first served)."""
        if self.try_acquire():
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        try:
            await fut
        except BaseException:
            if fut.done() and not fut.cancelled():
                self.release()  # the slot was handed over as we got cancelled
            else:
                self._waiters.remove(fut)
            raise

    def hold(self) -> None:
        """Take one more slot unconditionally (lent to a straggler; ``release`` it later)."""
        self.active += 1

    def release(self) -> None:
        """Give a slot back, handing it straight to the first waiter if there is one."""
        while self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                if self.active <= self.limit:
                    fut.set_result(None)  # the slot passes over; active stays the same
                    return
                self._waiters.appendleft(fut)
                break
        self.active -= 1


class Deadline:
    """One registration of ``Deadlines``: ``fired`` once its future was cancelled."""

    __slots__ = ("fired", "task", "when")

    def __init__(self, when: float, task: asyncio.Future[Any]) -> None:
        self.when = when
        self.task = task
        self.fired = False


class Deadlines:
    """Timeouts of many calls on one loop timer (``asyncio.timeout`` costs a timer
    handle, a heap push and a cancel per call). A registration names an asyncio task or
    future, cancelled when its deadline passes.

    Registrations are kept per timeout value in insertion order, which is deadline order
    for equal timeouts, so the earliest deadline is always a bucket's first entry. One
    timer is armed for the earliest deadline; when it fires, every due task or future
    is cancelled and the timer re-armed for the next deadline still registered.
    """

    __slots__ = ("_buckets", "_loop", "_seq", "_timer", "_when")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._buckets: dict[float, dict[int, Deadline]] = {}
        self._seq = itertools.count()
        self._timer: asyncio.TimerHandle | None = None
        self._when = math.inf

    def add(
        self, timeout: float, task: asyncio.Future[Any]
    ) -> tuple[dict[int, Deadline], int, Deadline]:
        """Cancel ``task`` (a task or future) in ``timeout`` seconds unless the entry is
        popped from the returned bucket first."""
        when = self._loop.time() + timeout
        bucket = self._buckets.get(timeout)
        if bucket is None:
            bucket = self._buckets[timeout] = {}
        key = next(self._seq)
        d = bucket[key] = Deadline(when, task)
        if when < self._when:
            self._arm(when)
        return bucket, key, d

    def _arm(self, when: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._when = when
        self._timer = self._loop.call_at(when, self._fire)

    def _fire(self) -> None:
        self._timer = None
        self._when = math.inf
        now = self._loop.time()
        nxt = math.inf
        for timeout, bucket in list(self._buckets.items()):
            while bucket:
                key = next(iter(bucket))
                d = bucket[key]
                if d.when > now:
                    nxt = min(nxt, d.when)
                    break
                del bucket[key]
                d.fired = True
                d.task.cancel()
            if not bucket:
                del self._buckets[timeout]
        if nxt < math.inf:
            self._arm(nxt)


def timeout_error(timeout: float) -> TaskTimeoutError:
    """The error reported for a task that ran past its timeout."""
    return TaskTimeoutError(f"task exceeded its timeout of {timeout:g} s")


class Worker(abc.ABC):
    """An execution engine: runs callables under a timeout, at most ``capacity`` at once.

    ``run`` waits for a free slot, calls ``fn(*args, **kwargs)`` and returns its value or
    raises its exception (TaskTimeoutError past ``timeout``, WorkerCrashedError when a
    child process died). Use as an async context manager, or call ``start``/``stop``.
    The pool drives the lower-level ``gate`` and ``execute`` directly so it can check a
    task's TTL between getting a slot and starting.
    """

    worker_type: ClassVar[WorkerType]

    def __init__(self, capacity: int) -> None:
        self.gate = Gate(capacity)
        self._started = False

    @property
    def capacity(self) -> int:
        """How many calls may run at once."""
        return self.gate.limit

    @property
    def running(self) -> int:
        """Calls running now, counting stragglers that outlived their timeout."""
        return self.gate.active

    async def start(self) -> None:
        """Acquire resources (threads, processes, hub). Idempotent."""
        self._started = True

    async def stop(self, *, force: bool = False, timeout: float = 5.0) -> None:  # noqa: ASYNC109
        """Release every resource; ``force`` interrupts running calls where possible.

        Waits up to ``timeout`` seconds for threads/children to end.
        """
        self._started = False

    async def run(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
        *,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> Any:
        """Run ``fn`` in this worker once a slot is free and return its result."""
        if not self._started:
            await self.start()
        await self.gate.acquire()
        try:
            return await self.execute(fn, args, kwargs or {}, timeout)
        finally:
            self.gate.release()

    @abc.abstractmethod
    async def execute(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        timeout: float | None,  # noqa: ASYNC109
    ) -> Any:
        """Run ``fn`` now; the caller holds a slot of ``gate``."""

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop(force=exc_type is not None)
