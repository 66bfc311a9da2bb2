"""Task functions of the flow-limit tests (imported by worker processes by path)."""

from __future__ import annotations

import os
import threading
import time


def span(path: str, seconds: float) -> None:
    """Run for ``seconds`` and append ``start end`` to a file: overlaps show concurrency."""
    start = time.time()
    time.sleep(seconds)
    with open(path, "a") as f:
        f.write(f"{start} {time.time()}\n")


def hold(marker: str) -> None:
    """First run: write this process's pid to ``marker`` and block for a minute (killed
    meanwhile); a run after that returns at once."""
    if os.path.exists(marker):
        return
    with open(marker, "w") as f:
        f.write(str(os.getpid()))
    time.sleep(60)


def mark(path: str) -> None:
    with open(path, "a") as f:
        f.write(f"{os.getpid()}\n")


_GATES: dict[str, threading.Event] = {}
_GATES_LOCK = threading.Lock()


def _gate(name: str) -> threading.Event:
    with _GATES_LOCK:
        return _GATES.setdefault(name, threading.Event())


def open_gate(name: str) -> None:
    """Let every ``gated`` run waiting on ``name`` (in this process) go on."""
    _gate(name).set()


def gated(log: str, name: str, gate: str) -> None:
    """Append ``name start`` to ``log``, wait (up to a minute) until ``open_gate(gate)``
    is called in this process (the tests run these in an in-process worker), then append
    ``name end``."""
    with open(log, "a") as f:
        f.write(f"{name} start {time.time()}\n")
    _gate(gate).wait(60)
    with open(log, "a") as f:
        f.write(f"{name} end {time.time()}\n")
