"""The file backend: all four contracts on any fsspec filesystem.

URLs: ``file:///abs/dir`` (local), ``file+<protocol>://...`` or ``fsspec+<protocol>://``
(e.g. ``file+memory://root`` for fsspec's in-memory FS), or any fsspec URL such as
``s3://bucket/prefix``. Layout under the root:

- ``journal`` + ``lock`` (local) or ``log/<seq>`` (other filesystems): the task queue
  and schedules, see ``_log``;
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
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import anyio.to_thread

if TYPE_CHECKING:
    from omniq.config import Settings

from omniq.models import StorageError, now, redact_url
from omniq.storage._corrupt import corrupt_result
from omniq.storage._interfaces import Backend
from omniq.storage._limits import PayloadLimit
from omniq.storage._state import QueueState
from omniq.storage._state_storage import StateSchedules

from ._log import LocalJournal, SegmentLog
from ._progress import FileTasks
from ._stores import Events, Files, Results
from ._workers import FileWorkers

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


class FileBackend(Backend):
    """All four contracts in files on any fsspec filesystem.

    Options: ``fsync`` (flush the journal to disk on every operation; default False,
    like SQLite's ``synchronous=NORMAL``: safe against process crashes, not power
    loss), ``compact_bytes`` (journal size that triggers compaction, default 8 MiB),
    ``poll_interval`` (how often waiters look for other processes' changes, local
    filesystem only, default 0.05 s).
    """

    @classmethod
    def default_url(cls, settings: Settings, store: str) -> str | None:
        """Every store defaults to ``$FSSPEC_URI``, else the folder ``$BASE_DIR/store``."""
        base = Path(settings.base_dir).expanduser().resolve()
        return settings.fsspec_uri or f"file://{base / 'store'}"

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
        self.tasks = self._tasks = FileTasks(
            self._run, poll=self._marker if self.local else None, max_poll=poll_interval
        )
        self.schedules = StateSchedules(self._run)
        self._files = Files(self._fs, self.root, self.local)
        self._tasks.files = self._files
        self.results: Results | None = None
        self.events: Events | None = None
        self.workers: FileWorkers | None = None
        self.share_payload_limit(PayloadLimit("file"))

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
            self.results = Results(self._files, poll if self.local else None)
            self._tasks.result_files = self.results
            self.events = Events(self._files, self._events_lock)
            self.workers = FileWorkers(self._files)
            if self.local:
                return LocalJournal(self.root, compact_bytes, fsync)
            log = SegmentLog(self._fs, self.root, compact_segments=max(64, compact_bytes >> 16))
            log.load(now())
            return log

        self._log = await anyio.to_thread.run_sync(open_)
        self.share_payload_limit(self.payload_limit)  # the result store is new

    async def close(self) -> None:
        log, self._log = self._log, None
        if isinstance(log, LocalJournal):
            log.close()

    def _call(self, fn: Callable[[QueueState, float], T]) -> T:
        log = self._log
        if log is None:
            raise StorageError(f"file store {redact_url(self.url)!r} is not connected")
        with self._tlock, log.locked(now()) as state:
            # The operation's clock is read once the lock is held and the other
            # processes' changes are in: a claim stamps its rate-limited starts
            # at the moment it counts them, not before a wait for the lock.
            return fn(state, now())

    async def _run(self, fn: Callable[[QueueState, float], T]) -> T:
        out = await anyio.to_thread.run_sync(self._call, fn)
        log = self._log
        if log is not None and log.state.corrupt and self.results is not None:
            bad, log.state.corrupt = log.state.corrupt, []
            await self.results.put([corrupt_result(b) for b in bad])
        return out

    async def _marker(self) -> object:
        log = self._log
        return log.marker() if isinstance(log, LocalJournal) else None
