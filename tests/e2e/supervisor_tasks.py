"""Task functions for the multi-process worker tests (imported by path in the children).

Each leaves a file behind so the test can observe which process ran what, and how often.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

WAIT = 60.0


def count(i: int, out: str) -> int:
    """Append ``i`` and this process's pid to ``out`` (one line per run)."""
    with open(out, "a") as f:
        f.write(f"{i} {os.getpid()}\n")
    return i


def meet(folder: str, n: int) -> int:
    """Wait until ``n`` different processes have entered ``meet`` (a barrier across
    processes: with concurrency 1, each of them must be in a different worker)."""
    Path(folder, str(os.getpid())).touch()
    deadline = time.monotonic() + WAIT
    while len(os.listdir(folder)) < n:
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {os.listdir(folder)} met")
        time.sleep(0.01)
    return os.getpid()


async def gate(i: int, folder: str) -> int:
    """Mark ``started-<i>-<pid>``, wait for ``folder/go``, then append ``i`` to
    ``folder/done``: killed or cancelled before ``go``, a run leaves no side effect."""
    _touch(folder, f"started-{i}-{os.getpid()}")
    deadline = time.monotonic() + WAIT
    while not _exists(folder, "go"):
        if time.monotonic() > deadline:
            raise TimeoutError("no go")
        await asyncio.sleep(0.01)
    _append(folder, "done", f"{i}\n")
    return i


def _touch(folder: str, name: str) -> None:
    Path(folder, name).touch()


def _exists(folder: str, name: str) -> bool:
    return Path(folder, name).exists()


def _append(folder: str, name: str, text: str) -> None:
    with open(Path(folder, name), "a") as f:
        f.write(text)


def crash() -> None:
    """Kill the worker process running this task."""
    os.kill(os.getpid(), 9)


def socket_patched() -> bool:
    """Whether the process running this task was monkey-patched by gevent."""
    from gevent import monkey

    return bool(monkey.is_module_patched("socket"))
