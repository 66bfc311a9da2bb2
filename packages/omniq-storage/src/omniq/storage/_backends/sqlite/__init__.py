"""The SQLite backend: all four contracts in one database file."""

from ._backend import SQLiteBackend

__all__ = ["SQLiteBackend"]
