"""Task functions for the task-context tests (importable by path in worker processes).

A held task writes ``started`` to its marker file, then waits until the test creates
the ``<marker>.go`` file, then writes ``finished``. A task stopped by a cancel never
writes ``finished`` however long the go file exists. Files, not memory, so a process
worker's child and a worker in another process report through them too.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import omniq.workers
from omniq.models import Fail, Retry


def mark(path: str, text: str) -> None:
    with open(path, "a") as f:
        f.write(text + "\n")


def mark_failure(result: dict[str, object], path: str, text: str) -> None:
    """An ``on_failure`` follow-up: ``mark`` with the failed task's status."""
    mark(path, f"{text}:{result['status']}")


def marks(path: str) -> list[str]:
    p = Path(path)
    return p.read_text().split() if p.exists() else []


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


async def async_held(path: str) -> str:
    """Held until ``path.go`` exists; writes ``cancelled`` if CancelledError stops it."""
    omniq.workers.current_task().set_progress(1, 10, "started")
    mark(path, "started")
    try:
        # The go file comes from another process: polling it is the point here.
        while not Path(path + ".go").exists():  # noqa: ASYNC110, ASYNC240
            await asyncio.sleep(0.01)
    except asyncio.CancelledError:
        mark(path, "cancelled")
        raise
    mark(path, "finished")
    return "finished"


def blocking_held(path: str) -> str:
    """``async_held`` for process and gevent workers (gevent.sleep in a greenlet, so a
    kill lands at the next switch)."""
    ctx = omniq.workers.current_task()
    ctx.set_progress(1, 10, "started")
    mark(path, "started")
    if ctx.worker_type == "gevent":
        import gevent  # type: ignore[import-untyped,unused-ignore]

        sleep = gevent.sleep
    else:
        sleep = time.sleep
    while not Path(path + ".go").exists():
        sleep(0.01)
    mark(path, "finished")
    return "finished"


def thread_held(path: str) -> str:
    """A thread task that checks ``cancelled`` while held: writes ``saw-cancel``."""
    ctx = omniq.workers.current_task()
    mark(path, "started")
    while not Path(path + ".go").exists():
        if ctx.wait_cancelled(0.01):
            mark(path, "saw-cancel")
            return "cancelled"
    mark(path, "finished")
    return "finished"


def progress_loop(n: int, path: str) -> str:
    """Call set_progress ``n`` times in a tight loop, then wait for ``path.go``."""
    ctx = omniq.workers.current_task()
    for i in range(1, n + 1):
        ctx.set_progress(i, n, f"step {i}")
    mark(path, "started")
    deadline = time.monotonic() + 60
    while not Path(path + ".go").exists() and time.monotonic() < deadline:
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
    mark(path, "ran")
    raise Fail("bad input, no point retrying")
