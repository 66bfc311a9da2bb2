"""Task functions of the queue pause tests (imported by worker processes by path)."""

from __future__ import annotations

import os


def whoami(path: str) -> int:
    """Append this process's pid to a file: which worker process ran the task."""
    with open(path, "a") as f:
        f.write(f"{os.getpid()}\n")
    return os.getpid()
