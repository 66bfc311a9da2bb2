"""The file backend: all four contracts on any fsspec filesystem.

URLs: ``file:///abs/dir`` (local), ``file+<protocol>://...`` or ``fsspec+<protocol>://``
(e.g. ``file+memory://root`` for fsspec's in-memory FS), or any fsspec URL such as
``s3://bucket/prefix``. Layout under the root:

- ``journal`` + ``lock`` (local) or ``log/<seq>`` (other filesystems): the task queue
  and schedules, see ``_file_log``;
- ``results/<task_id>``: one msgpack object per result, replaced atomically;
- ``events/<id>.jsonl``: events as JSON lines, one new object per append call.

On the local filesystem several processes may share one directory (fcntl locks,
atomic renames); elsewhere one process must own the store. Waiters are woken at once
by changes made in this process and notice other processes' changes by polling the
journal's size (there is no cross-process notification for files).
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

import anyio.to_thread

from omniq.models import EventType, TaskEvent, TaskResult, new_id, now

from ._codec import decode_event, decode_result, encode, encode_event
from ._file_log import LocalJournal, SegmentLog
from ._interfaces import Backend, EventStorage, ResultStorage
from ._notify import Notifier
from ._state import QueueState
from ._state_storage import StateSchedules, StateTasks
from ._waiting import wait_for_result

__all__ = ["FileBackend"]

T = TypeVar("T")


def _resolve(url: str) -> tuple[Any, str, bool]:
    """(fsspec filesystem, root path, is local) for a file-backend URL."""
    import fsspec

    scheme, _, rest = url.partition("://")
    scheme = scheme.lower()
    for prefix in ("file+", "fsspec+"):
        if scheme.startswith(prefix):
            scheme = scheme[len(prefix) :]
    fs, root = fsspec.core.url_to_fs(f"{scheme}://{rest}")
    protocols = (fs.protocol,) if isinstance(fs.protocol, str) else tuple(fs.protocol)
    local = "file" in protocols or "local" in protocols
    root = root.rstrip("/") or "/"
    if local:
        root = os.path.abspath(root)
    return fs, root, local


class _Files:
    """Whole-object reads and atomic writes, via ``os`` locally and fsspec elsewhere."""

    def __init__(self, fs: Any, root: str, local: bool) -> None:
        self.fs, self.root, self.local = fs, root, local

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


class _Results(ResultStorage):
    def __init__(self, files: _Files, poll_interval: float | None) -> None:
        self._files = files
        self._dir = f"{files.root}/results"
        files.makedirs(self._dir)
        self._poll = poll_interval
        self.notifier = Notifier()

    def _path(self, task_id: str) -> str:
        return f"{self._dir}/{task_id}"

    async def put(self, results: Sequence[TaskResult]) -> None:
        items = [(self._path(r.task_id), encode(r)) for r in results]

        def run() -> None:
            for path, data in items:
                self._files.write(path, data)

        await anyio.to_thread.run_sync(run)
        self.notifier.notify([r.task_id for r in results])

    def _read(self, task_id: str, at: float) -> TaskResult | None:
        data = self._files.read(self._path(task_id))
        if data is None:
            return None
        r = decode_result(data)
        return None if r.expires_at is not None and r.expires_at <= at else r

    async def get(self, task_ids: Sequence[str]) -> list[TaskResult | None]:
        ids, t = list(task_ids), now()
        return await anyio.to_thread.run_sync(lambda: [self._read(i, t) for i in ids])

    async def wait(self, task_id: str, timeout: float | None) -> TaskResult | None:  # noqa: ASYNC109
        return await wait_for_result(
            self, self.notifier, task_id, timeout, poll_interval=self._poll
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
                r = decode_result(data)
                if r.expires_at is not None and r.expires_at <= t:
                    n += self._files.remove(f"{self._dir}/{name}")
            return n

        return await anyio.to_thread.run_sync(run)


class _Events(EventStorage):
    def __init__(self, files: _Files, lock: Callable[[], contextlib.AbstractContextManager[None]]):
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


class FileBackend(Backend):
    """All four contracts in files on any fsspec filesystem.

    Options: ``fsync`` (flush the journal to disk on every operation; default False,
    like SQLite's ``synchronous=NORMAL``: safe against process crashes, not power
    loss), ``compact_bytes`` (journal size that triggers compaction, default 8 MiB),
    ``poll_interval`` (how often waiters look for other processes' changes, local
    filesystem only, default 0.05 s).
    """

    def __init__(
        self,
        url: str,
        *,
        fsync: bool = False,
        compact_bytes: int = 8 << 20,
        poll_interval: float = 0.05,
    ) -> None:
        self.url = url
        self._fs, self.root, self.local = _resolve(url)
        self._opts = (fsync, compact_bytes, poll_interval)
        self._tlock = threading.Lock()
        self._log: LocalJournal | SegmentLog | None = None
        self.tasks = StateTasks(
            self._run, poll=self._marker if self.local else None, max_poll=poll_interval
        )
        self.schedules = StateSchedules(self._run)
        self._files = _Files(self._fs, self.root, self.local)
        self.results: _Results | None = None
        self.events: _Events | None = None

    @contextlib.contextmanager
    def _events_lock(self) -> Iterator[None]:
        with self._tlock:
            if not self.local:
                yield
                return
            import fcntl

            fd = os.open(f"{self.root}/events.lock", os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                yield
            finally:
                os.close(fd)

    async def connect(self) -> None:
        if self._log is not None:
            return
        fsync, compact_bytes, poll = self._opts

        def open_() -> LocalJournal | SegmentLog:
            self._files.makedirs(self.root)
            self.results = _Results(self._files, poll if self.local else None)
            self.events = _Events(self._files, self._events_lock)
            if self.local:
                return LocalJournal(self.root, compact_bytes, fsync)
            log = SegmentLog(self._fs, self.root, compact_segments=max(64, compact_bytes >> 16))
            log.load(now())
            return log

        self._log = await anyio.to_thread.run_sync(open_)

    async def close(self) -> None:
        log, self._log = self._log, None
        if isinstance(log, LocalJournal):
            log.close()

    def _call(self, fn: Callable[[QueueState, float], T]) -> T:
        log = self._log
        if log is None:
            from omniq.models import StorageError

            raise StorageError(f"file store {self.url!r} is not connected")
        with self._tlock:
            t = now()
            with log.locked(t) as state:
                return fn(state, t)

    async def _run(self, fn: Callable[[QueueState, float], T]) -> T:
        return await anyio.to_thread.run_sync(self._call, fn)

    async def _marker(self) -> object:
        log = self._log
        return log.marker() if isinstance(log, LocalJournal) else None
