"""The SQLite backend (``sqlite:///path.db``): all four contracts in one database file.

WAL journal, ``synchronous=NORMAL`` and a busy timeout let several processes (and
hosts sharing one local disk, not a network filesystem) use one file. Every state
change is one ``BEGIN IMMEDIATE`` transaction, so it is atomic against every other
connection; the claim is a single ``UPDATE ... RETURNING``. Each backend owns one
connection driven by one dedicated thread, so the event loop never blocks on SQLite.

URL forms: ``sqlite:///relative.db``, ``sqlite:////absolute.db`` (SQLAlchemy style),
``sqlite://:memory:`` (one connection, this backend only).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from omniq.config import Settings

from omniq.storage._interfaces import Backend
from omniq.storage._limits import PayloadLimit

from ._conn import Connection, db_path
from ._stores import Events, Results, Schedules
from ._tasks import SQLiteTasks
from ._workers import SQLiteWorkers

__all__ = ["SQLiteBackend"]


class SQLiteBackend(Backend):
    """All four contracts in one SQLite database file (``sqlite:///path.db``).

    Options: ``busy_timeout`` (seconds a writer waits for the lock, default 30),
    ``poll_interval`` (how often a waiter re-checks for other processes' changes,
    default 0.05 s; changes from this process wake waiters at once).
    """

    @classmethod
    def default_url(cls, settings: Settings, store: str) -> str | None:
        """Every store defaults to one database file, ``$BASE_DIR/omniq.db``."""
        return f"sqlite:///{Path(settings.base_dir).expanduser().resolve() / 'omniq.db'}"

    def __init__(
        self, url: str, *, busy_timeout: float = 30.0, poll_interval: float = 0.05
    ) -> None:
        self.url = url
        self.db = Connection(db_path(url), busy_timeout)
        self.tasks = SQLiteTasks(self.db, poll_interval)
        self.results = Results(self.db, poll_interval)
        self.tasks.results = self.results
        self.events = Events(self.db)
        self.schedules = Schedules(self.db)
        self._workers = SQLiteWorkers(self.db)
        self.workers = self._workers
        self.share_payload_limit(PayloadLimit("SQLite", source="SQLITE_MAX_LENGTH"))

    async def connect(self) -> None:
        await self.db.open()
        await self._workers.setup()
        self.payload_limit.engine = await self.db.run(
            lambda c: c.getlimit(sqlite3.SQLITE_LIMIT_LENGTH)
        )

    async def close(self) -> None:
        await self.db.close()
