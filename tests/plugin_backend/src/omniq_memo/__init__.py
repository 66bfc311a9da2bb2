"""memo://: OmniQ's in-process memory backend, published under a scheme of its own.

The smallest outside backend: a ``Backend`` subclass, its default-URL rule, and one
``omniq.backends`` entry point in this distribution's pyproject.
"""

from __future__ import annotations

from omniq.config import Settings
from omniq.storage import MemoryBackend

__all__ = ["MemoBackend"]


class MemoBackend(MemoryBackend):
    """Each ``memo://<name>`` opened is a fresh in-process store (like ``memory://``)."""

    def __init__(self, url: str = "memo://") -> None:
        super().__init__(url)

    @classmethod
    def default_url(cls, settings: Settings, store: str) -> str | None:
        """``OMNIQ_*_TYPE=memo`` without a URL: one name per store kind."""
        return f"memo://{store}"
