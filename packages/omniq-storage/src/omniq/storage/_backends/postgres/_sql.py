"""The PostgreSQL backend's SQL, read from package data with ``importlib.resources``.

``sql/queries.sql`` holds every fixed statement, each under a ``-- name: <name>``
header; ``sql/migrations/NNNN_<what>.sql`` are the schema migrations, each a delta on
the one before, applied in version order (the number in the file name) and recorded
in ``omniq_migrations``.
"""

from __future__ import annotations

import re
from importlib import resources
from importlib.resources.abc import Traversable

from omniq.models import StorageError

__all__ = ["MIGRATIONS", "QUERIES", "load_migrations", "load_queries", "query"]

_NAME = re.compile(r"^-- name: ([a-z_][a-z0-9_]*)\s*$", re.MULTILINE)
_MIGRATION = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


def _sql_dir() -> Traversable:
    return resources.files(__package__ or __name__.rpartition(".")[0]).joinpath("sql")


def load_queries() -> dict[str, str]:
    """Every named statement of ``sql/queries.sql`` (comments kept, trailing ``;``
    dropped: asyncpg takes one statement)."""
    text = _sql_dir().joinpath("queries.sql").read_text(encoding="utf-8")
    parts = _NAME.split(text)
    out: dict[str, str] = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        if name in out:
            raise StorageError(f"queries.sql names {name!r} twice")
        out[name] = body.strip().rstrip(";").strip()
    return out


def load_migrations() -> list[tuple[int, str]]:
    """(version, DDL) of every ``sql/migrations/NNNN_*.sql``, by version; the versions
    must run 1, 2, 3, ... without a gap."""
    found: list[tuple[int, str]] = []
    for entry in _sql_dir().joinpath("migrations").iterdir():
        m = _MIGRATION.match(entry.name)
        if m is not None:
            found.append((int(m.group(1)), entry.read_text(encoding="utf-8")))
    found.sort()
    versions = [v for v, _ in found]
    if versions != list(range(1, len(found) + 1)):
        raise StorageError(f"postgres migrations must be numbered 1..n, found {versions}")
    return found


QUERIES = load_queries()
MIGRATIONS = load_migrations()


def query(name: str) -> str:
    """The statement ``name`` of ``queries.sql``."""
    try:
        return QUERIES[name]
    except KeyError:
        raise StorageError(f"no query {name!r} in the postgres queries.sql") from None
