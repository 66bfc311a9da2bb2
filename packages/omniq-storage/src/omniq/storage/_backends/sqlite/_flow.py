"""Flow limits in the SQLite claim: the limits of a limited task live in
``task_limits`` (one row per task), its starts in ``limit_starts``.

The plain claim leaves tasks with a ``task_limits`` row alone; ``claim_limited`` runs
after it in the same ``BEGIN IMMEDIATE`` transaction, so every claim of every process
is serialized with it: a key's running count (its tasks running under a lease that
has not lapsed) and its starts in the rate window are read and raised atomically.

A standby (``claim_standby``) is a task claimed ahead to run in the slot of a running
capped claim once that run ends; ``limit_standbys`` names the claim (task id and
token) it stands by, and while that claim runs too the two count as one.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from omniq.models import LimitInfo, Task, limit_of
from omniq.storage._flow_state import burst_of


def placeholders(n: int) -> str:
    return ",".join("?" * n)


__all__ = [
    "FLOW_SCHEMA",
    "claim_limited",
    "claim_standby",
    "limit_info",
    "limit_rows",
    "not_limited",
    "spare_standbys",
]

FLOW_SCHEMA = """
CREATE TABLE IF NOT EXISTS task_limits (
    task_id TEXT PRIMARY KEY,
    key TEXT NOT NULL,
    max_running INTEGER,
    rate_n INTEGER,
    rate_per REAL,
    rate_text TEXT
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS task_limits_key ON task_limits (key);
CREATE TABLE IF NOT EXISTS limit_starts (key TEXT NOT NULL, at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS limit_starts_key ON limit_starts (key, at);
CREATE TABLE IF NOT EXISTS limit_standbys (
    task_id TEXT PRIMARY KEY,
    token TEXT,
    behind_id TEXT NOT NULL,
    behind_token TEXT NOT NULL,
    spared INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS limit_standbys_behind ON limit_standbys (behind_id);
"""
# limit_standbys: ``token`` is the standby's own claim token (the row stands for a
# standby only while the task runs under it); ``spared``: a lapsed standby lease gave
# the task its attempt back once already.

not_limited = " AND NOT EXISTS (SELECT 1 FROM task_limits l WHERE l.task_id = tasks.id)"
"""The plain claim's filter: tasks without limits only."""

_SCAN = 1000
"""How many ready limited tasks one claim looks at (held ones are skipped)."""


def limit_rows(tasks: Sequence[Task]) -> list[tuple[Any, ...]]:
    """``task_limits`` rows of the limited tasks among ``tasks``."""
    rows: list[tuple[Any, ...]] = []
    for t in tasks:
        spec = limit_of(t)
        if spec is not None:
            rate = spec.rate
            rows.append(
                (
                    t.id,
                    spec.key,
                    spec.max_concurrency,
                    None if rate is None else rate.count,
                    None if rate is None else rate.window,
                    t.rate_limit,
                )
            )
    return rows


def _usage(
    c: sqlite3.Connection, key: str, t: float, rate_n: int | None, per: float | None
) -> tuple[int, int, int]:
    """Running count, starts in the rate window, starts in the burst window."""
    running = c.execute(
        "SELECT count(*) FROM tasks JOIN task_limits l ON l.task_id = tasks.id"
        " WHERE l.key = ? AND tasks.status = 'running' AND tasks.lease_expires_at > ?"
        " AND NOT EXISTS (SELECT 1 FROM limit_standbys s JOIN tasks b ON b.id = s.behind_id"
        " WHERE s.task_id = tasks.id AND s.token = tasks.token AND b.token = s.behind_token"
        " AND b.status = 'running' AND b.lease_expires_at > ?)",
        (key, t, t),
    ).fetchone()[0]
    starts = recent = 0
    if per is not None and rate_n is not None:
        starts, recent = c.execute(
            "SELECT count(*), count(*) FILTER (WHERE at > ?) FROM limit_starts"
            " WHERE key = ? AND at > ?",
            (t - burst_of(rate_n, per)[1], key, t - per),
        ).fetchone()
    return int(running), int(starts), int(recent or 0)


def claim_limited(
    c: sqlite3.Connection,
    live: list[str],
    t: float,
    limit: int,
    *,
    token: str,
    worker_id: str,
    until: float,
    cols: str,
) -> tuple[list[Any], list[str]]:
    """Claim up to ``limit`` limited tasks of ``live`` queues within their limits;
    returns the claimed rows (``priority, cols``) and the keys that held tasks back."""
    cands = c.execute(
        "SELECT tasks.id, l.key, l.max_running, l.rate_n, l.rate_per FROM tasks"
        " JOIN task_limits l ON l.task_id = tasks.id"
        f" WHERE tasks.status = 'pending' AND tasks.ready = 1"
        f" AND tasks.queue IN ({placeholders(len(live))})"
        " AND (tasks.eta IS NULL OR tasks.eta <= ?)"
        " AND (tasks.expires_at IS NULL OR tasks.expires_at > ?)"
        " ORDER BY tasks.priority DESC, tasks.id LIMIT ?",
        [*live, t, t, _SCAN],
    ).fetchall()
    budget: dict[str, tuple[int, int, int]] = {}
    full: set[str] = set()
    pick: list[tuple[str, str, float | None]] = []
    for tid, key, cap, rate_n, per in cands:
        if len(pick) >= limit:
            break
        if key in full:
            continue
        if key not in budget:
            budget[key] = _usage(c, key, t, rate_n, per)
        running, starts, recent = budget[key]
        if (cap is not None and running >= cap) or (
            rate_n is not None and (starts >= rate_n or recent >= burst_of(rate_n, per)[0])
        ):
            full.add(key)
            continue
        budget[key] = (running + 1, starts + 1, recent + 1)
        pick.append((tid, key, per))
    if not pick:
        return [], sorted(full)
    ids = [p[0] for p in pick]
    rows = c.execute(
        "UPDATE tasks SET status = 'running', attempt = attempt + 1, token = ?,"
        f" worker_id = ?, lease_expires_at = ? WHERE id IN ({placeholders(len(ids))})"
        f" RETURNING priority, {cols}",
        [token, worker_id, until, *ids],
    ).fetchall()
    c.executemany("INSERT INTO limit_starts VALUES (?, ?)", [(p[1], t) for p in pick])
    for key in {p[1] for p in pick}:
        pers = [p[2] for p in pick if p[1] == key and p[2] is not None]
        horizon = max(pers) if pers else 0.0
        c.execute("DELETE FROM limit_starts WHERE key = ? AND at <= ?", (key, t - horizon))
    return rows, sorted(full)


def claim_standby(
    c: sqlite3.Connection,
    qs: list[str],
    t: float,
    behind: tuple[str, str],
    *,
    token: str,
    worker_id: str,
    until: float,
    cols: str,
) -> list[Any]:
    """Lease the next ready task of the key of ``behind`` (the id and token of a
    running claim under a cap without a rate) as its standby; returns its row
    (``priority, cols``), or none when ``behind`` no longer runs under that token, has
    a live standby already, or no task of its key is ready in ``qs``."""
    row = c.execute(
        "SELECT l.key FROM tasks JOIN task_limits l ON l.task_id = tasks.id"
        " WHERE tasks.id = ? AND tasks.token = ? AND tasks.status = 'running'"
        " AND tasks.lease_expires_at > ? AND l.max_running IS NOT NULL AND l.rate_n IS NULL",
        (*behind, t),
    ).fetchone()
    if row is None or not qs:
        return []
    taken = c.execute(
        "SELECT 1 FROM limit_standbys s JOIN tasks ON tasks.id = s.task_id"
        " WHERE s.behind_id = ? AND s.behind_token = ? AND tasks.token = s.token"
        " AND tasks.status = 'running' AND tasks.lease_expires_at > ?",
        (*behind, t),
    ).fetchone()
    if taken is not None:
        return []
    rows = c.execute(
        "UPDATE tasks SET status = 'running', attempt = attempt + 1, token = ?,"
        " worker_id = ?, lease_expires_at = ? WHERE id = (SELECT tasks.id FROM tasks"
        " JOIN task_limits l ON l.task_id = tasks.id WHERE l.key = ?"
        " AND tasks.status = 'pending' AND tasks.ready = 1"
        f" AND tasks.queue IN ({placeholders(len(qs))})"
        " AND (tasks.eta IS NULL OR tasks.eta <= ?)"
        " AND (tasks.expires_at IS NULL OR tasks.expires_at > ?)"
        f" ORDER BY tasks.priority DESC, tasks.id LIMIT 1) RETURNING priority, {cols}",
        [token, worker_id, until, row[0], *qs, t, t],
    ).fetchall()
    if rows:
        c.execute(
            "INSERT INTO limit_standbys (task_id, token, behind_id, behind_token)"
            " VALUES (?, ?, ?, ?) ON CONFLICT (task_id) DO UPDATE SET token = excluded.token,"
            " behind_id = excluded.behind_id, behind_token = excluded.behind_token",
            (rows[0][1], token, *behind),
        )
    return rows


def spare_standbys(c: sqlite3.Connection, t: float) -> None:
    """Of the leases lapsed at ``t`` (about to be reclaimed), give the standbys their
    attempt back, once per task: a worker that died holding a task it had not started
    costs that task no attempt, while a task that brings its worker down on each run
    still runs out of attempts."""
    lapsed = (
        "SELECT s.task_id FROM limit_standbys s JOIN tasks k ON k.id = s.task_id"
        " WHERE k.status = 'running' AND k.lease_expires_at <= ? AND s.token = k.token"
    )
    c.execute(
        f"UPDATE tasks SET attempt = max(attempt - 1, 0) WHERE id IN ({lapsed} AND s.spared = 0)",
        (t,),
    )
    c.execute(
        f"UPDATE limit_standbys SET token = NULL, spared = 1 WHERE task_id IN ({lapsed})", (t,)
    )


def limit_info(c: sqlite3.Connection, t: float) -> list[LimitInfo]:
    """Every key's running count and remaining rate budget (the newest task's spec)."""
    out: list[LimitInfo] = []
    keys = c.execute(
        "SELECT l.key, l.max_running, l.rate_n, l.rate_per, l.rate_text FROM task_limits l"
        " JOIN tasks ON tasks.id = l.task_id"
        " ORDER BY l.key, (tasks.status IN ('pending', 'running')), tasks.id"
    ).fetchall()
    latest: dict[str, tuple[Any, ...]] = {}
    for row in keys:
        latest[row[0]] = row
    for key in sorted(latest):
        _, cap, rate_n, per, text = latest[key]
        running, starts, _ = _usage(c, key, t, rate_n, per)
        out.append(
            LimitInfo(
                key=key,
                running=running,
                max_concurrency=cap,
                rate_limit=text,
                remaining=None if rate_n is None else max(0, rate_n - starts),
            )
        )
    return out
