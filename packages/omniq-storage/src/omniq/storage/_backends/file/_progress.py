"""The file backend's task store: progress records in ``progress/<task id>`` under the
root, one msgpack ``Progress`` each, replaced atomically; cancel/expire results written
under the journal lock.

``set_progress`` is the contract's default: a renew under the journal lock (the fence)
then the write. Cancels made by other processes are noticed by the contract's status
poll (``cancel_poll``); cancels made through this backend object reach its watchers
at once.
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence

import anyio.to_thread
import msgspec

from omniq.models import Progress
from omniq.storage._interfaces import ProgressUpdate, ResultStorage
from omniq.storage._state_storage import LockedResults, StateTasks

from ._stores import Files, Results

__all__ = ["FileTasks"]

_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder(Progress).decode


class FileTasks(StateTasks):
    """``StateTasks`` whose progress records live in files (readable by every process
    sharing the directory)."""

    files: Files | None = None
    """Set by the backend once it knows its root."""
    result_files: Results | None = None
    """The backend's result store (set at connect): ``cancel``/``expire`` write its
    files under the journal lock, before the journal records the state change."""

    def locked_results(self, store: ResultStorage) -> LockedResults | None:
        own = self.result_files
        return own if own is not None and store is own else None

    def _dir(self, files: Files) -> str:
        return f"{files.root}/progress"

    async def store_progress(self, updates: Sequence[ProgressUpdate]) -> None:
        files = self.files
        if files is None or not updates:
            return
        folder = self._dir(files)
        items = [(files.child(folder, u.task_id), _encode(u.progress)) for u in updates]

        def run() -> None:
            files.makedirs(folder)
            for path, data in items:
                files.write(path, data)

        await anyio.to_thread.run_sync(run)

    async def get_progress(self, task_ids: Sequence[str]) -> builtins.list[Progress | None]:
        files = self.files
        if files is None or not task_ids:
            return [None] * len(task_ids)
        folder = self._dir(files)
        paths = [files.child(folder, i) for i in task_ids]

        def run() -> list[Progress | None]:
            out: list[Progress | None] = []
            for path in paths:
                data = files.read(path)
                try:
                    out.append(None if data is None else _decode(data))
                except msgspec.DecodeError:
                    out.append(None)
            return out

        return await anyio.to_thread.run_sync(run)
