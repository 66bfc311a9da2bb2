"""Results and events of the file backend (see ``_backend``), over a small
filesystem wrapper that writes atomically where the filesystem allows.

A task id never names a path: ``Files.child`` turns it into one file name (the id
itself when it is a plain name, else a hash of it) and proves, after normalisation,
that the path stays directly inside its directory under the store's root.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import posixpath
import re
from collections.abc import Callable, Sequence
from typing import Any

import anyio.to_thread

from omniq.models import EventType, InvalidTaskError, TaskEvent, TaskResult, new_id, now
from omniq.storage._codec import decode_event, encode, encode_event
from omniq.storage._corrupt import read_result
from omniq.storage._interfaces import EventStorage, ResultStorage
from omniq.storage._wake import Wake, wait_for_result

__all__ = ["Events", "Files", "Results", "file_name"]

_PLAIN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")


def file_name(key: str) -> str:
    """The file name holding ``key``'s object: ``key`` itself when it is a plain name
    (letters, digits, ``_.-``, starting with a letter or digit, at most 128 characters,
    not ending in ``.tmp``), else ``_h`` + its SHA-256. Every id gets a file; no id
    is a path (``..``, ``/``, ``\\``, NUL and absolute paths all hash)."""
    if _PLAIN.fullmatch(key) and not key.endswith(".tmp"):
        return key
    return "_h" + hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


class Files:
    """Whole-object reads and atomic writes, via ``os`` locally and fsspec elsewhere."""

    def __init__(self, fs: Any, root: str, local: bool) -> None:
        self.fs, self.root, self.local = fs, root, local

    def child(self, directory: str, key: str) -> str:
        """The path of ``key``'s file in ``directory`` (one of the store's own folders),
        checked after normalisation to stay directly inside it, under the root;
        ``InvalidTaskError`` naming the key otherwise. Every read, write and delete of
        an object named by a task id goes through here."""
        norm = os.path.normpath if self.local else posixpath.normpath
        folder = norm(directory)
        path = norm(f"{folder}/{file_name(key)}")
        root = norm(self.root).rstrip("/")
        if path.rsplit("/", 1)[0] != folder or not folder.startswith(f"{root}/"):
            raise InvalidTaskError(
                f"task id {key!r} names a path outside the file store's {folder!r}"
            )
        return path

    def makedirs(self, path: str) -> None:
        if self.local:
            os.makedirs(path, exist_ok=True)
        else:
            self.fs.makedirs(path, exist_ok=True)

    def write(self, path: str, data: bytes) -> None:
        if self.local:
            tmp = f"{path}.{new_id()}.tmp"
            with open(tmp, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        else:
            self.fs.pipe_file(path, data)

    def read(self, path: str) -> bytes | None:
        try:
            if self.local:
                with open(path, "rb") as f:
                    return f.read()
            data: bytes = self.fs.cat_file(path)
            return data
        except FileNotFoundError:
            return None

    def names(self, directory: str) -> list[str]:
        try:
            if self.local:
                return sorted(n for n in os.listdir(directory) if not n.endswith(".tmp"))
            paths = self.fs.ls(directory, detail=False)
        except FileNotFoundError:
            return []
        return sorted(p.rstrip("/").rsplit("/", 1)[-1] for p in paths)

    def remove(self, path: str) -> bool:
        try:
            if self.local:
                os.remove(path)
            else:
                self.fs.rm_file(path)
        except FileNotFoundError:
            return False
        return True


class Results(ResultStorage):
    def __init__(self, files: Files, poll_interval: float | None) -> None:
        self._files = files
        self._dir = f"{files.root}/results"
        files.makedirs(self._dir)
        self._poll = poll_interval
        self.wake = Wake()

    def _path(self, task_id: str) -> str:
        return self._files.child(self._dir, task_id)

    async def put(self, results: Sequence[TaskResult]) -> None:
        self.payload_limit.check_results(results)
        items = list(results)
        await anyio.to_thread.run_sync(lambda: self.store(items))
        self.wake.notify([r.task_id for r in results])

    def store(self, results: Sequence[TaskResult]) -> None:
        """Write result files now (blocking), without waking waiters: ``put``, and the
        task store's ``cancel``/``expire`` under the journal lock."""
        for r in results:
            self._files.write(self._path(r.task_id), encode(r))

    def _read(self, task_id: str, at: float) -> TaskResult | None:
        data = self._files.read(self._path(task_id))
        if data is None:
            return None
        r = read_result(data, task_id)
        return None if r is None or (r.expires_at is not None and r.expires_at <= at) else r

    async def get(self, task_ids: Sequence[str]) -> list[TaskResult | None]:
        ids, t = list(task_ids), now()
        return await anyio.to_thread.run_sync(lambda: [self._read(i, t) for i in ids])

    async def wait(self, task_id: str, timeout: float | None) -> TaskResult | None:  # noqa: ASYNC109
        return await wait_for_result(
            lambda: self.get_one(task_id), self.wake, task_id, timeout, recheck=self._poll
        )

    async def delete(self, task_ids: Sequence[str]) -> int:
        ids = list(task_ids)
        return await anyio.to_thread.run_sync(
            lambda: sum(self._files.remove(self._path(i)) for i in ids)
        )

    async def purge_expired(self) -> int:
        t = now()

        def run() -> int:
            n = 0
            for name in self._files.names(self._dir):
                data = self._files.read(f"{self._dir}/{name}")
                if data is None:
                    continue
                r = read_result(data, name)
                if r is not None and r.expires_at is not None and r.expires_at <= t:
                    n += self._files.remove(f"{self._dir}/{name}")
            return n

        return await anyio.to_thread.run_sync(run)


class Events(EventStorage):
    def __init__(self, files: Files, lock: Callable[[], contextlib.AbstractContextManager[None]]):
        self._files = files
        self._dir = f"{files.root}/events"
        files.makedirs(self._dir)
        self._lock = lock

    async def append(self, events: Sequence[TaskEvent]) -> None:
        if not events:
            return
        data = b"".join(encode_event(e) + b"\n" for e in events)
        path = f"{self._dir}/{new_id()}.jsonl"
        await anyio.to_thread.run_sync(self._files.write, path, data)

    def _load(self) -> tuple[list[str], list[TaskEvent]]:
        names = [n for n in self._files.names(self._dir) if n.endswith(".jsonl")]
        events: list[TaskEvent] = []
        for name in names:
            data = self._files.read(f"{self._dir}/{name}")
            if data:
                events.extend(decode_event(line) for line in data.splitlines() if line)
        events.sort(key=lambda e: (e.timestamp, e.id))
        return names, events

    async def query(
        self,
        *,
        task_id: str | None = None,
        types: Sequence[EventType] | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int | None = None,
    ) -> list[TaskEvent]:
        _, events = await anyio.to_thread.run_sync(self._load)
        wanted = set(types) if types is not None else None
        out = [
            e
            for e in events
            if (task_id is None or e.task_id == task_id)
            and (wanted is None or e.type in wanted)
            and (since is None or e.timestamp >= since)
            and (until is None or e.timestamp < until)
        ]
        return out if limit is None else out[:limit]

    async def purge(self, *, older_than: float | None = None, keep_last: int | None = None) -> int:
        def run() -> int:
            with self._lock():
                names, events = self._load()
                kept = events
                if older_than is not None:
                    kept = [e for e in kept if e.timestamp >= older_than]
                if keep_last is not None:
                    kept = kept[-keep_last:] if keep_last > 0 else []
                if len(kept) == len(events):
                    return 0
                if kept:
                    data = b"".join(encode_event(e) + b"\n" for e in kept)
                    self._files.write(f"{self._dir}/{new_id()}.jsonl", data)
                for name in names:
                    self._files.remove(f"{self._dir}/{name}")
                return len(events) - len(kept)

        return await anyio.to_thread.run_sync(run)

    async def count(self) -> int:
        _, events = await anyio.to_thread.run_sync(self._load)
        return len(events)
