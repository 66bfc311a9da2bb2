"""Task functions for the task-context tests (importable by path in worker processes).

Each long-running task writes ``started`` to its marker file, then waits; a task that
is stopped by a cancel never writes ``finished``. Files, not memory, so a process
worker's child and a worker in another process report through them too.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import omniq.workers
from omniq.models import Fail, Retry


def _mark(path: str, text: str) -> None:
    with open(path, "a") as f:
        f.write(text + "\n")


def context_info() -> dict[str, object]:
    ctx = omniq.workers.current_task()
    return {
        "task_id": ctx.task_id,
        "attempt": ctx.attempt,
        "queue": ctx.queue,
        "worker_id": ctx.worker_id,
        "cancelled": ctx.cancelled,
    }


async def async_context_info() -> dict[str, object]:
    await asyncio.sleep(0)
    return context_info()


async def async_sleeper(path: str, seconds: float) -> str:
    """Mark ``started``, record progress, sleep; mark ``finished`` if not stopped."""
    omniq.workers.current_task().set_progress(1, 10, "started")
    _mark(path, "started")
    await asyncio.sleep(seconds)
    _mark(path, "finished")
    return "finished"


def blocking_sleeper(path: str, seconds: float) -> str:
    """Like ``async_sleeper`` for thread, process and gevent workers (time.sleep is
    cooperative under gevent's monkey-patching, and gevent.sleep is used otherwise)."""
    omniq.workers.current_task().set_progress(1, 10, "started")
    _mark(path, "started")
    if omniq.workers.current_task().worker_type == "gevent":
        import gevent  # type: ignore[import-untyped,unused-ignore]

        gevent.sleep(seconds)  # yields to the hub: a killed greenlet stops here
    else:
        time.sleep(seconds)
    _mark(path, "finished")
    return "finished"


def cooperative_thread(path: str, seconds: float) -> str:
    """A thread task that checks ``cancelled``: writes ``saw-cancel`` and returns early."""
    ctx = omniq.workers.current_task()
    _mark(path, "started")
    if ctx.wait_cancelled(seconds):
        _mark(path, "saw-cancel")
        return "cancelled"
    _mark(path, "finished")
    return "finished"


def progress_loop(n: int, path: str) -> str:
    """Call set_progress ``n`` times in a tight loop, then wait for ``path`` to exist."""
    ctx = omniq.workers.current_task()
    for i in range(1, n + 1):
        ctx.set_progress(i, n, f"step {i}")
    deadline = time.monotonic() + 30
    while not Path(path).exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    return "done"


def retry_until(path: str, times: int, delay: float | None) -> int:
    """Raise Retry(delay) ``times`` times (counted in a file), then return the attempt."""
    p = Path(path)
    n = int(p.read_text()) if p.exists() else 0
    p.write_text(str(n + 1))
    if n < times:
        raise Retry(delay)
    return omniq.workers.current_task().attempt


def fail_for_good(path: str) -> None:
    _mark(path, "ran")
    raise Fail("bad input, no point retrying")
