"""The file backend's worker registry: ``workers/<worker id>``, one msgpack entry per
worker, replaced atomically at each refresh (see ``_backend``)."""

from __future__ import annotations

import builtins
from collections.abc import Sequence

import anyio.to_thread

from omniq.models import WorkerInfo
from omniq.models import now as _now
from omniq.storage._interfaces import WorkerRegistry
from omniq.storage._workers import alive, decode_worker, encode_worker

from ._stores import Files

__all__ = ["FileWorkers"]


class FileWorkers(WorkerRegistry):
    """Entries as files under ``<root>/workers``; expiry is read from each entry."""

    def __init__(self, files: Files) -> None:
        self._files = files
        self._dir = f"{files.root}/workers"
        files.makedirs(self._dir)

    def _path(self, worker_id: str) -> str:
        return self._files.child(self._dir, worker_id)

    async def register(self, workers: Sequence[WorkerInfo]) -> None:
        items = [(self._path(w.id), encode_worker(w)) for w in workers]

        def run() -> None:
            for path, data in items:
                self._files.write(path, data)

        await anyio.to_thread.run_sync(run)

    async def deregister(self, worker_ids: Sequence[str]) -> int:
        paths = [self._path(i) for i in worker_ids]
        return await anyio.to_thread.run_sync(lambda: sum(self._files.remove(p) for p in paths))

    def _read_all(self) -> builtins.list[tuple[str, WorkerInfo | None]]:
        out: builtins.list[tuple[str, WorkerInfo | None]] = []
        for name in self._files.names(self._dir):
            data = self._files.read(f"{self._dir}/{name}")
            if data is not None:
                out.append((name, decode_worker(data)))
        return out

    async def list(self, *, now: float | None = None) -> builtins.list[WorkerInfo]:
        entries = await anyio.to_thread.run_sync(self._read_all)
        return alive((w for _, w in entries), now)

    async def purge_expired(self, *, now: float | None = None) -> int:
        t = _now() if now is None else now

        def run() -> int:
            n = 0
            for name, w in self._read_all():
                if w is None or not w.alive(t):
                    n += self._files.remove(f"{self._dir}/{name}")
            return n

        return await anyio.to_thread.run_sync(run)
