"""Vacuuming of the backend's own tables, so claims stay fast as finished rows pile up.

Every claim and completion updates a task row; PostgreSQL keeps the old row version
(a dead tuple) and its index entries until ``VACUUM`` removes them. Claims scan the
partial indexes of pending and running rows from their start, so without vacuuming each
claim walks past the dead entries of every task claimed before it and slows down in
proportion to the queue's history. Autovacuum normally removes them; where it is off,
or lags on a busy server, ``Vacuumer`` does it for OmniQ's own tables.

``poke()`` is called by the workers' TTL sweeps (``TaskQueueStorage.maintain``, about once
a second). At most every ``interval`` seconds it reads ``pg_stat_user_tables`` for the
schema's tables and, in a background task (the sweep never waits for it), runs
``VACUUM (ANALYZE, SKIP_LOCKED)`` on each table this role owns whose dead tuples exceed
``threshold + scale * live tuples``. A vacuum holds a lock that conflicts with another
vacuum of the same table, so ``SKIP_LOCKED`` keeps it to one at a time across all
worker processes (the others skip the table instead of waiting) and skips a table that
autovacuum is working on; no session state is used, so it works through transaction
poolers. ``?vacuum=off`` in the URL turns it off.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

__all__ = ["Vacuumer"]

_log = logging.getLogger("omniq.storage.postgres")

_DUE = """
SELECT s.relname FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid
WHERE s.schemaname = $1 AND pg_has_role(c.relowner, 'USAGE')
  AND s.n_dead_tup > $2 + $3 * s.n_live_tup
ORDER BY s.n_dead_tup DESC
"""


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class Vacuumer:
    """Vacuums the tables of one schema when their dead tuples pile up (see module)."""

    def __init__(
        self,
        call: Callable[[Callable[[Any], Awaitable[Any]]], Awaitable[Any]],
        schema: str,
        *,
        enabled: bool = True,
        interval: float = 1.0,
        threshold: int = 2000,
        scale: float = 0.02,
    ) -> None:
        self._call = call
        self.schema = schema
        self.enabled = enabled
        """False: ``poke`` does nothing (``?vacuum=off``)."""
        self.interval = interval
        """Seconds between two looks at the statistics, per process."""
        self.threshold = threshold
        self.scale = scale
        self.vacuums = 0
        """Tables vacuumed by this process so far."""
        self._next = 0.0
        self._task: asyncio.Task[list[str]] | None = None

    def poke(self) -> None:
        """Start a check (and the vacuums it finds due) in the background, unless one
        is running or the last one started less than ``interval`` seconds ago."""
        t = time.monotonic()
        if not self.enabled or t < self._next or (self._task and not self._task.done()):
            return
        self._next = t + self.interval
        self._task = asyncio.get_running_loop().create_task(self.run_once(), name="omniq-pg-vacuum")

    async def run_once(self) -> list[str]:
        """Vacuum the due tables now; returns their names. Errors are logged, not
        raised: a role that may not vacuum is told once and stops trying."""
        try:
            return list(await self._call(self._run))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            _log.debug("vacuum of schema %s skipped: %s", self.schema, exc)
            self._next = time.monotonic() + 60 * self.interval
            return []

    async def _run(self, conn: Any) -> list[str]:
        due = [r[0] for r in await conn.fetch(_DUE, self.schema, self.threshold, self.scale)]
        for table in due:
            await conn.execute(
                f"VACUUM (ANALYZE, SKIP_LOCKED) {_ident(self.schema)}.{_ident(table)}"
            )
            self.vacuums += 1
        return due

    async def close(self) -> None:
        """Stop a vacuum in progress (the server finishes or aborts it on its own)."""
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
