"""Task functions for the chaos suite, importable by path in worker processes.

Every run appends one line ``<task-tag> <pid> <ppid> <monotonic-ns>`` to a ledger with a
single ``write`` on an ``O_APPEND`` descriptor (atomic for lines this short), so the
ledger is the ground truth of how often each task started, and in which process.
"""

from __future__ import annotations

import asyncio
import os
import time


def _append(ledger: str, line: str) -> None:
    fd = os.open(ledger, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def mark(ledger: str, tag: str, what: str = "run") -> None:
    """Append one ledger line for ``tag`` from this process."""
    _append(ledger, f"{tag} {os.getpid()} {os.getppid()} {what} {time.monotonic_ns()}\n")


def mark_failure(result: dict[str, object], ledger: str, tag: str) -> None:
    """An ``on_failure`` follow-up: ``mark`` with the failed task's status as ``what``."""
    mark(ledger, tag, str(result["status"]))


def work(ledger: str, tag: str, seconds: float) -> str:
    """A blocking task (thread/process workers): record the run, then take ``seconds``."""
    mark(ledger, tag)
    time.sleep(seconds)
    return tag


async def awork(ledger: str, tag: str, seconds: float) -> str:
    """A coroutine task (async worker): record the run, then take ``seconds``."""
    mark(ledger, tag)
    await asyncio.sleep(seconds)
    return tag


def work_then_mark(ledger: str, tag: str, seconds: float) -> str:
    """Record the start, run ``seconds``, record the end (to see a stale run finish)."""
    mark(ledger, tag, "start")
    time.sleep(seconds)
    mark(ledger, tag, "end")
    return f"{tag} by {os.getpid()}"


def die(ledger: str, tag: str) -> None:
    """Poison: the process running it exits at once, reporting nothing."""
    mark(ledger, tag)
    os._exit(17)


def blow_memory(ledger: str, tag: str, limit_mb: int) -> int:
    """Poison: cap this process's address space at ``limit_mb`` more than it uses, then
    try to allocate far beyond it (MemoryError instead of a host-wide OOM)."""
    import resource

    mark(ledger, tag)
    with open("/proc/self/statm") as f:
        used = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    cap = used + limit_mb * 2**20
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    try:
        blob = bytearray(cap * 4)
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (hard, hard))
    return len(blob)


def blow_up(flag: str) -> str:
    """Fails until the file ``flag`` exists (a dead letter that a fix can rescue)."""
    if not os.path.exists(flag):
        raise RuntimeError(f"{flag} missing")
    return "fixed"


def mark_then_fail(ledger: str, tag: str) -> None:
    """Record the run, then fail for good (no retries by default)."""
    mark(ledger, tag)
    raise RuntimeError(f"{tag} failed on purpose")
