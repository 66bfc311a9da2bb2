"""The backends the conformance suite runs against: one registry entry per backend.

Each entry opens an isolated, connected store for one test (a fresh directory, a
unique fsspec root, a unique schema/key prefix/stream...) and cleans up afterwards.
Capabilities select the tests a backend can legitimately take part in; to add a
server backend, add one ``register(BackendSpec(...))`` call below.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

from omniq.storage import Backend, open_storage

__all__ = ["BACKENDS", "BackendSpec", "ids_with", "register"]


@dataclass(frozen=True)
class BackendSpec:
    """How to open one isolated store of a backend, and what it can do."""

    id: str
    url: Callable[[Path], str]
    """A URL naming a fresh store for a test (``tmp_path`` is the test's own directory);
    opening the same URL again, from this or another process, reaches the same store."""
    shared: bool = False
    """Several backend objects (connections) in one process may use one store at once."""
    multiprocess: bool = False
    """Several OS processes may share one store (they open ``url`` themselves)."""
    persistent: bool = False
    """Data survives closing the backend and opening the URL again."""
    cleanup: Callable[[str], None] | None = None

    @contextlib.asynccontextmanager
    async def open(self, tmp_path: Path) -> AsyncIterator[tuple[Backend, str]]:
        url = self.url(tmp_path)
        try:
            async with open_storage(url) as backend:
                yield backend, url
        finally:
            if self.cleanup is not None:
                self.cleanup(url)


BACKENDS: dict[str, BackendSpec] = {}


def register(spec: BackendSpec) -> None:
    BACKENDS[spec.id] = spec


def ids_with(*capabilities: str) -> list[str]:
    """Ids of the backends having every named capability flag."""
    return [i for i, s in BACKENDS.items() if all(getattr(s, c) for c in capabilities)]


def _memfs_cleanup(url: str) -> None:
    import fsspec

    fs = fsspec.filesystem("memory")
    root = url.split("://", 1)[1]
    if fs.exists(root):
        fs.rm(root, recursive=True)


register(BackendSpec("memory", lambda tmp: "memory://"))
register(
    BackendSpec(
        "file-local",
        lambda tmp: (tmp / "store").as_uri(),
        shared=True,
        multiprocess=True,
        persistent=True,
    )
)
register(
    BackendSpec(
        "file-memfs",
        lambda tmp: f"file+memory://omniq-test-{uuid.uuid4().hex}",
        persistent=True,
        cleanup=_memfs_cleanup,
    )
)
register(
    BackendSpec(
        "sqlite",
        lambda tmp: f"sqlite:///{tmp / 'omniq.db'}",
        shared=True,
        multiprocess=True,
        persistent=True,
    )
)

# Server backends (owned by the PostgreSQL/Redis/NATS work): one namespace per test.
from ._servers import drop_namespace, unique_url  # noqa: E402

register(
    BackendSpec(
        "redis",
        lambda tmp: unique_url("redis"),
        shared=True,
        multiprocess=True,
        persistent=True,
        cleanup=drop_namespace,
    )
)
register(
    BackendSpec(
        "postgres",
        lambda tmp: unique_url("postgresql"),
        shared=True,
        multiprocess=True,
        persistent=True,
        cleanup=drop_namespace,
    )
)
register(
    BackendSpec(
        "nats",
        lambda tmp: unique_url("nats"),
        shared=True,
        multiprocess=True,
        persistent=True,
        cleanup=drop_namespace,
    )
)
