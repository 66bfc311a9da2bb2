"""Task functions for the inline-mode tests (importable by path, like any task)."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

CALLS: list[str] = []
"""What the tasks below ran, in order (inline mode runs them in this process)."""


def add(a: int, b: int) -> int:
    CALLS.append(f"add {a} {b}")
    return a + b


async def async_mul(a: int, b: int) -> int:
    await asyncio.sleep(0)
    CALLS.append(f"mul {a} {b}")
    return a * b


def note(tag: str) -> str:
    CALLS.append(tag)
    return tag


def note_failure(result: dict[str, object], tag: str) -> str:
    """An ``on_failure`` follow-up: ``note`` with the failed task's status."""
    return note(f"{tag} ({result['status']})")


class Opaque:
    """Survives a Python call but not msgpack or JSON (and dill is off)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()


def returns_opaque() -> Opaque:
    CALLS.append("returns_opaque")
    return Opaque()


def flaky(path: str, fail_times: int) -> int:
    """Fail the first ``fail_times`` calls (counted in a file), then return the count."""
    p = Path(path)
    n = int(p.read_text()) if p.exists() else 0
    p.write_text(str(n + 1))
    if n < fail_times:
        raise RuntimeError(f"flaky failure {n + 1}")
    return n + 1


def always_fails() -> None:
    CALLS.append("always_fails")
    raise ValueError("broken on purpose")
