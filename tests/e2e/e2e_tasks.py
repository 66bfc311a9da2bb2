"""Task functions for the end-to-end suite (importable by path in worker processes)."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any


def add(a: int, b: int) -> int:
    return a + b


def failure_report(result: dict[str, Any], path: str) -> dict[str, str]:
    """An ``on_failure`` follow-up returning what it learnt of the failed task."""
    record(path, f"on-failure {result['status']}")
    error = result.get("error") or {}
    return {
        "task_id": result["task_id"],
        "status": result["status"],
        "error_type": str(error.get("type", "")).rsplit(".", 1)[-1],
    }


def record_failure(result: dict[str, object], path: str, tag: str) -> str:
    """An ``on_failure`` follow-up: ``record`` with the failed task's status appended."""
    return record(path, f"{tag} {result['status']}")


async def loop_kind() -> str:
    """The class of the event loop running this (async) task, e.g. ``uvloop.Loop``."""
    import asyncio

    loop = asyncio.get_running_loop()
    return f"{type(loop).__module__}.{type(loop).__qualname__}"


async def async_mul(a: int, b: int) -> int:
    await asyncio.sleep(0)
    return a * b


def record(path: str, tag: str) -> str:
    """Append ``tag`` to a file (to observe order and count across processes)."""
    with open(path, "a") as f:
        f.write(tag + "\n")
    return tag


def flaky(path: str, fail_times: int) -> str:
    """Fail the first ``fail_times`` calls (counted in a file), then succeed."""
    p = Path(path)
    n = int(p.read_text()) if p.exists() else 0
    p.write_text(str(n + 1))
    if n < fail_times:
        raise ValueError(f"flaky failure {n + 1}")
    return f"ok after {n + 1}"


def always_fails(msg: str = "nope") -> None:
    raise RuntimeError(msg)


def slow(seconds: float) -> str:
    time.sleep(seconds)
    return "slow done"


def die_first_time(path: str) -> str:
    """First run: mark and hang (the test SIGKILLs the worker). Later runs: finish."""
    p = Path(path)
    runs = p.read_text().count("x") if p.exists() else 0
    with open(p, "a") as f:
        f.write("x")
    if runs == 0:
        time.sleep(120)
    return f"completed on run {runs + 1} in pid {os.getpid()}"


def read_file(path: str) -> str:
    """The file's text (tests read their markers through this sync helper)."""
    return Path(path).read_text()


def mark_then_sleep(path: str, seconds: float) -> str:
    """Create ``path`` (the test sees the task has started), then work for a while."""
    Path(path).write_text("started")
    time.sleep(seconds)
    return "slow done"
