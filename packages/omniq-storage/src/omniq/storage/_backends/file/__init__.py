"""The file backend: all four contracts on any fsspec filesystem."""

from ._backend import FileBackend

__all__ = ["FileBackend"]
