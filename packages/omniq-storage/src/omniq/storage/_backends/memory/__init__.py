"""The in-process memory backend."""

from ._backend import MemoryBackend

__all__ = ["MemoryBackend"]
