"""Unique jobs on SQLite: ``task_unique`` keeps the key of a task with ``unique_for``
reserved until its window ends, whatever the task's state. Enqueue runs in one
``BEGIN IMMEDIATE`` transaction, so reading the reservations, storing the tasks and
writing new reservations cannot interleave with another enqueue."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from typing import Any

import msgspec

from omniq.models import Task, TaskStatus
from omniq.storage._codec import encode

__all__ = ["UNIQUE_SCHEMA", "prune", "replace_pending", "reserve", "reserved"]

UNIQUE_SCHEMA = """
CREATE TABLE IF NOT EXISTS task_unique (
    key TEXT PRIMARY KEY,
    task_id TEXT NOT NULL,
    until REAL NOT NULL
) WITHOUT ROWID;
"""


def reserved(
    c: sqlite3.Connection,
    keys: Sequence[str],
    at: float,
    cols: str,
    read: Callable[[Sequence[Any]], Task],
) -> dict[str, Task]:
    """The tasks whose window still reserves one of ``keys`` at ``at``, by key."""
    out: dict[str, Task] = {}
    for i in range(0, len(keys), 500):
        chunk = keys[i : i + 500]
        sel = ", ".join(f"t.{col.strip()}" for col in cols.split(","))
        rows = c.execute(
            f"SELECT u.key, {sel} FROM task_unique u JOIN tasks t ON t.id = u.task_id"
            f" WHERE u.key IN ({', '.join('?' * len(chunk))}) AND u.until > ?",
            [*chunk, at],
        ).fetchall()
        for r in rows:
            out[r[0]] = read(r[1:])
    return out


def reserve(c: sqlite3.Connection, tasks: Sequence[Task]) -> None:
    """Write the reservations of newly stored ``tasks`` that carry ``unique_for``."""
    rows = [
        (t.key, t.id, t.created_at + t.unique_for)
        for t in tasks
        if t.key is not None and t.unique_for is not None
    ]
    if rows:
        c.executemany("INSERT OR REPLACE INTO task_unique VALUES (?, ?, ?)", rows)


def prune(c: sqlite3.Connection, at: float) -> int:
    """Drop the reservations whose window ended before ``at`` (they hold nothing any
    more); how many were dropped."""
    return int(c.execute("DELETE FROM task_unique WHERE until <= ?", (at,)).rowcount)


def replace_pending(c: sqlite3.Connection, new: Task, old: Task) -> Task:
    """``on_conflict="replace"``: give the pending ``old`` the payload and eta of
    ``new``; ``old`` unchanged when it is not pending."""
    if old.status is not TaskStatus.PENDING:
        return old
    upd = msgspec.structs.replace(old, payload=new.payload, eta=new.eta)
    cur = c.execute(
        "UPDATE tasks SET data = ?, eta = ? WHERE id = ? AND status = 'pending'",
        (encode(upd), new.eta, old.id),
    )
    return upd if cur.rowcount else old
