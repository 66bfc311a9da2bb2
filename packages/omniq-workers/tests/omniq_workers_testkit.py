"""In-memory TaskSource/OutcomeSink and task functions for the omniq-workers tests.

Task functions live in this importable module (the conftest puts this folder on
sys.path) so process-pool children can resolve them by import path.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import threading
import time
from collections import deque
from collections.abc import Iterable, Sequence
from typing import Any

from omniq.models import ClaimedTask, Payload, Task, WorkerType
from omniq.serialization import SerializationManager
from omniq.workers import Outcome

SER = SerializationManager()
MOD = __name__


def make_task(
    func: str,
    *args: Any,
    worker: WorkerType | str | None = None,
    timeout: float | None = None,
    expires_at: float | None = None,
    **kwargs: Any,
) -> Task:
    """A task calling ``func`` (a name in this module or a full path) with the arguments."""
    path = func if ":" in func else f"{MOD}:{func}"
    payload = SER.dumps_call(tuple(args), dict(kwargs)) if args or kwargs else None
    return Task(
        func=path,
        payload=payload,
        worker=WorkerType(worker) if worker is not None else None,
        timeout=timeout,
        expires_at=expires_at,
    )


def value_of(outcome: Outcome) -> Any:
    return None if outcome.value is None else SER.loads(outcome.value)


class MemorySource:
    """A list of tasks leased out in FIFO order; records claims, renewals and releases."""

    def __init__(self, tasks: Iterable[Task] = (), *, worker_id: str = "test-worker") -> None:
        self.pending: deque[Task] = deque(tasks)
        self.worker_id = worker_id
        self.claimed: list[ClaimedTask] = []
        self.released: list[ClaimedTask] = []
        self.renewed: list[list[str]] = []
        self.lost: set[str] = set()
        self.max_limit = 0
        self._tokens = itertools.count()
        self._work = asyncio.Event()
        self.renew_seen = asyncio.Event()

    def add(self, tasks: Iterable[Task]) -> None:
        self.pending.extend(tasks)
        self._work.set()

    async def claim(self, limit: int) -> list[ClaimedTask]:
        self.max_limit = max(self.max_limit, limit)
        out = []
        exp = time.time() + 30.0
        while self.pending and len(out) < limit:
            task = self.pending.popleft()
            out.append(
                ClaimedTask(
                    task=task,
                    token=str(next(self._tokens)),
                    lease_expires_at=exp,
                    worker_id=self.worker_id,
                )
            )
        self.claimed.extend(out)
        return out

    async def renew(self, claims: Sequence[ClaimedTask]) -> set[str]:
        ids = [c.task.id for c in claims]
        self.renewed.append(ids)
        self.renew_seen.set()
        return {i for i in ids if i in self.lost}

    async def release(self, claims: Sequence[ClaimedTask]) -> None:
        self.released.extend(claims)

    async def wait_for_work(self, timeout: float) -> bool:  # noqa: ASYNC109
        if self.pending:
            return True
        self._work.clear()
        try:
            async with asyncio.timeout(timeout):
                await self._work.wait()
        except TimeoutError:
            return False
        return True


class MemorySink:
    """Collects outcomes; ``await sink.wait_for(n)`` waits (with a deadline) for n of them."""

    def __init__(self) -> None:
        self.outcomes: list[Outcome] = []
        self.started_claims: list[ClaimedTask] = []
        self.batches: list[int] = []
        self._changed = asyncio.Event()

    async def started(self, claims: Sequence[ClaimedTask]) -> None:
        self.started_claims.extend(claims)
        self._changed.set()

    async def report(self, outcomes: Sequence[Outcome]) -> None:
        self.batches.append(len(outcomes))
        self.outcomes.extend(outcomes)
        self._changed.set()

    def by_id(self) -> dict[str, Outcome]:
        return {o.task_id: o for o in self.outcomes}

    async def wait_for(self, n: int, timeout: float = 30.0) -> None:  # noqa: ASYNC109
        async with asyncio.timeout(timeout):
            while len(self.outcomes) < n:
                self._changed.clear()
                await self._changed.wait()

    async def wait_started(self, n: int, timeout: float = 30.0) -> None:  # noqa: ASYNC109
        async with asyncio.timeout(timeout):
            while len(self.started_claims) < n:
                self._changed.clear()
                await self._changed.wait()


def max_overlap(intervals: Iterable[tuple[float, float]]) -> int:
    """Largest number of [start, end] intervals open at one instant."""
    points = []
    for s, e in intervals:
        points.append((s, 1))
        points.append((e, -1))
    points.sort(key=lambda p: (p[0], p[1]))
    cur = best = 0
    for _, d in points:
        cur += d
        best = max(best, cur)
    return best


# -- task functions ---------------------------------------------------------------------


def add(a: int, b: int) -> int:
    return a + b


async def aadd(a: int, b: int) -> int:
    await asyncio.sleep(0)
    return a + b


def noop() -> None:
    return None


async def anoop() -> None:
    return None


class Boom(ValueError):
    pass


def boom(msg: str) -> None:
    raise Boom(msg)


async def aboom(msg: str) -> None:
    await asyncio.sleep(0)
    raise Boom(msg)


def pid() -> int:
    return os.getpid()


def sleep_for(seconds: float) -> str:
    time.sleep(seconds)  # work that outlives its timeout
    return "woke"


def started_then_sleep(seconds: float = 30.0) -> str:
    """Report progress (the caller's sink learns the call is running), then sleep."""
    from omniq.workers import current_task

    current_task().set_progress(1)
    time.sleep(seconds)
    return "woke"


async def asleep_for(seconds: float) -> str:
    await asyncio.sleep(seconds)
    return "woke"


def gsleep_for(seconds: float) -> str:
    import gevent

    gevent.sleep(seconds)
    return "woke"


def interval(work: float) -> list[float]:
    """Busy for ``work`` seconds; returns its [start, end] on the shared monotonic clock."""
    start = time.monotonic()
    time.sleep(work)
    return [start, time.monotonic()]


async def ainterval(work: float) -> list[float]:
    start = time.monotonic()
    await asyncio.sleep(work)
    return [start, time.monotonic()]


def ginterval(work: float) -> list[float]:
    import gevent

    start = time.monotonic()
    gevent.sleep(work)
    return [start, time.monotonic()]


# In-process gates the tests open and close (thread/async/gevent-hub-thread tasks).
GATES: dict[str, threading.Event] = {}
RUNS: dict[str, int] = {}
_lock = threading.Lock()


def gate(name: str) -> threading.Event:
    with _lock:
        return GATES.setdefault(name, threading.Event())


def hold(name: str, key: str) -> str:
    """Count a run of ``key``, then block until gate ``name`` opens (bounded at 30 s)."""
    with _lock:
        RUNS[key] = RUNS.get(key, 0) + 1
    gate(name).wait(30.0)
    return key


AGATES: dict[str, asyncio.Event] = {}


def agate(name: str) -> asyncio.Event:
    """An event-loop gate for async tasks (create it inside the test's loop)."""
    return AGATES.setdefault(name, asyncio.Event())


async def ahold(name: str, key: str) -> str:
    with _lock:
        RUNS[key] = RUNS.get(key, 0) + 1
    await agate(name).wait()
    return key


def ghold(name: str, key: str) -> str:
    import gevent

    with _lock:
        RUNS[key] = RUNS.get(key, 0) + 1
    ev = gate(name)
    while not ev.is_set():
        gevent.sleep(0.005)
    return key


def marker_payload() -> Payload:
    return SER.dumps(1)


def fhold(path: str, key: str) -> str:
    """Process-pool gate: wait (bounded at 30 s) until the file at ``path`` exists."""
    deadline = time.monotonic() + 30
    while not os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.005)
    return key


def write_pid_and_hang(path: str) -> None:
    from pathlib import Path

    Path(path).write_text(str(os.getpid()))
    time.sleep(60)


def exit_hard() -> None:
    os._exit(3)


def segfault() -> None:
    import ctypes

    ctypes.string_at(0)


async def aadd_slow() -> None:
    await asyncio.sleep(30)


def omniq_children() -> list[int]:
    """Pids of this process's live (or unreaped) ProcessWorker children, read from /proc."""
    from pathlib import Path

    me = str(os.getpid())
    found = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
            cmdline = (d / "cmdline").read_bytes()
        except OSError:
            continue  # it ended while we looked
        ppid = stat.rpartition(")")[2].split()[1]
        if ppid == me and b"omniq.workers._child" in cmdline:
            found.append(int(d.name))
    return found
