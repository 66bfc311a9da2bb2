"""Persistence of the file backend's queue state: a journal of changed records.

Each operation appends one frame (4-byte length + msgpack ``Change``) listing the task
records and schedules it changed or deleted; replaying the frames rebuilds the state.
A frame that does not decode is replayed record by record: a task record that does not
decode but names its id is replaced by an ``error`` stand-in (written back to the
journal; see ``_corrupt``), any other undecodable part is skipped with a warning.
When the journal grows past a threshold it is compacted into a single frame holding
the live state and swapped in with an atomic rename.

``LocalJournal`` (local filesystem) is multi-process safe: every operation holds an
exclusive ``fcntl.flock`` on ``lock`` while it reads the frames other processes
appended since its last look, applies its own change and appends it. A torn frame
left by a crashed writer is truncated by the next lock holder.
``SegmentLog`` (any other fsspec filesystem) writes each frame as its own object,
``log/<seq>``; objects are never appended or renamed, which object stores cannot do
atomically, so it assumes ONE process owns the store.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import struct
from collections.abc import Iterator
from typing import Any

import msgspec

from omniq.models import Schedule, TaskStatus
from omniq.storage._corrupt import Corrupt, log, stand_in
from omniq.storage._state import QueueState, TaskRecord

__all__ = ["Change", "LocalJournal", "SegmentLog"]

_LEN = struct.Struct(">I")


class Change(msgspec.Struct, array_like=True, omit_defaults=True):
    """What one operation changed."""

    tasks: list[TaskRecord] = msgspec.field(default_factory=list)
    deleted: list[str] = msgspec.field(default_factory=list)
    schedules: list[Schedule] = msgspec.field(default_factory=list)
    deleted_schedules: list[str] = msgspec.field(default_factory=list)
    paused: list[str] | None = None
    """The whole set of paused queues, when the operation changed it."""


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(Change)
_any = msgspec.msgpack.Decoder()
_BAD = (msgspec.DecodeError, TypeError, ValueError, OverflowError)


def _salvage(body: bytes, state: QueueState, now: float) -> Change:
    """A frame that does not decode as a whole, decoded part by part."""
    try:
        raw = _any.decode(body)
    except _BAD as exc:
        log.warning("skipping a journal frame that does not decode: %s", exc)
        return Change()
    parts = raw if isinstance(raw, list) else []
    paused = parts[4] if len(parts) > 4 else None
    parts = parts + [[]] * (4 - len(parts))
    out = Change()
    for item in parts[0] if isinstance(parts[0], list) else []:
        try:
            out.tasks.append(msgspec.convert(item, TaskRecord))
            continue
        except _BAD as exc:
            reason = f"stored task does not decode: {exc}"
        task = item[0] if isinstance(item, list) and item else None
        tid = task.get("id") if isinstance(task, dict) else None
        if not isinstance(task, dict) or not isinstance(tid, str):
            log.warning("skipping a journal task record without an id: %s", reason)
            continue
        q, a = task.get("queue"), task.get("attempt")
        queue = q if isinstance(q, str) else None
        attempt = a if isinstance(a, int) else 0
        out.tasks.append(
            TaskRecord(stand_in(tid, queue, TaskStatus.ERROR, attempt, reason), finished_at=now)
        )
        state.corrupt.append(Corrupt(tid, "", reason, attempt, queue))
    for idx, (name, kind) in enumerate(
        (("deleted", str), ("schedules", Schedule), ("deleted_schedules", str)), 1
    ):
        got = getattr(out, name)
        for item in parts[idx] if isinstance(parts[idx], list) else []:
            try:
                got.append(msgspec.convert(item, kind))
            except _BAD as exc:
                log.warning("skipping a journal %s entry that does not decode: %s", name, exc)
    if paused is None or (isinstance(paused, list) and all(isinstance(q, str) for q in paused)):
        out.paused = paused
    else:
        log.warning("skipping a journal's paused queues that do not decode")
    return out


def take_change(state: QueueState) -> Change | None:
    """The state's pending changes as a Change (None if nothing changed); resets them."""
    if not (
        state.dirty
        or state.deleted
        or state.dirty_schedules
        or state.deleted_schedules
        or state.paused_dirty
    ):
        return None
    change = Change(
        tasks=[state.recs[i] for i in sorted(state.dirty) if i in state.recs],
        deleted=sorted(state.deleted),
        schedules=[state.schedules[i] for i in sorted(state.dirty_schedules)],
        deleted_schedules=sorted(state.deleted_schedules),
        paused=sorted(state.paused) if state.paused_dirty else None,
    )
    state.reset_changes()
    return change


def snapshot(state: QueueState) -> Change:
    return Change(
        tasks=list(state.recs.values()),
        schedules=list(state.schedules.values()),
        paused=sorted(state.paused),
    )


def frame(change: Change) -> bytes:
    body = _encoder.encode(change)
    return _LEN.pack(len(body)) + body


def _pending_last(rec: TaskRecord) -> bool:
    return rec.task.status is TaskStatus.PENDING


def apply(state: QueueState, data: bytes, now: float) -> int:
    """Apply every complete frame in ``data``; returns the bytes consumed."""
    pos, end = 0, len(data)
    seen = len(state.corrupt)
    while pos + 4 <= end:
        (size,) = _LEN.unpack_from(data, pos)
        if pos + 4 + size > end:
            break
        body = data[pos + 4 : pos + 4 + size]
        try:
            change = _decoder.decode(body)
        except _BAD:
            change = _salvage(body, state, now)
        # Pending records last: whether one is ready depends on its dependencies' status,
        # which may be in the same frame (a completion journals the task and the
        # dependents it released together, in no particular order).
        for rec in sorted(change.tasks, key=_pending_last):
            state.put_record(rec, now)
        for tid in change.deleted:
            state.delete_record(tid)
        for s in change.schedules:
            state.schedules[s.id] = s
        for sid in change.deleted_schedules:
            state.schedules.pop(sid, None)
        if change.paused is not None:
            state.paused = set(change.paused)
        pos += 4 + size
    state.reset_changes()
    for bad in state.corrupt[seen:]:  # the stand-ins go back to the journal with the next change
        state.dirty.add(bad.task_id)
        log.warning("quarantined corrupt task record %s: %s", bad.task_id, bad.reason)
    return pos


class LocalJournal:
    """``journal`` + ``lock`` files in a local directory, shared by processes."""

    def __init__(self, root: str, compact_bytes: int, fsync: bool) -> None:
        self.root = root
        self.path = os.path.join(root, "journal")
        self._compact_bytes = compact_bytes
        self._fsync = fsync
        self.state = QueueState()
        self._ino: int | None = None
        self._offset = 0
        os.makedirs(root, exist_ok=True)
        self._lock_fd = os.open(os.path.join(root, "lock"), os.O_RDWR | os.O_CREAT, 0o644)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self._lock_fd)

    @contextlib.contextmanager
    def locked(self, now: float) -> Iterator[QueueState]:
        """Hold the store's lock with the state synced; append what the body changed."""
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
        try:
            self._sync(now)
            try:
                yield self.state
            finally:
                change = take_change(self.state)
                if change is not None:
                    self._append(frame(change))
                    if self._offset > self._compact_bytes:
                        self._compact()
        finally:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    def _sync(self, now: float) -> None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            self.state, self._ino, self._offset = QueueState(), None, 0
            return
        if st.st_ino != self._ino:
            self.state, self._ino, self._offset = QueueState(), st.st_ino, 0
        if st.st_size == self._offset:
            return
        with open(self.path, "rb") as f:
            f.seek(self._offset)
            data = f.read()
        used = apply(self.state, data, now)
        self._offset += used
        if used < len(data):  # a writer died mid-frame; we hold the lock, so cut it off
            os.truncate(self.path, self._offset)

    def _append(self, data: bytes) -> None:
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, data)
            if self._fsync:
                os.fsync(fd)
            if self._ino is None:
                self._ino = os.fstat(fd).st_ino
        finally:
            os.close(fd)
        self._offset += len(data)

    def _compact(self) -> None:
        data = frame(snapshot(self.state))
        tmp = self.path + ".compact"
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        self._ino, self._offset = os.stat(self.path).st_ino, len(data)
        self._compact_bytes = max(self._compact_bytes, 4 * len(data))

    def marker(self) -> tuple[int, int] | None:
        """Changes whenever any process appends (cheap: one stat, no lock)."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        return st.st_ino, st.st_size


class SegmentLog:
    """One object per operation under ``log/`` on any fsspec filesystem (one process)."""

    def __init__(self, fs: Any, root: str, compact_segments: int) -> None:
        self.fs = fs
        self.dir = f"{root}/log"
        self._compact_at = compact_segments
        self.state = QueueState()
        self._seq = 0
        self._segments: list[str] = []

    def load(self, now: float) -> None:
        self.fs.makedirs(self.dir, exist_ok=True)
        names = sorted(p.rsplit("/", 1)[-1] for p in self.fs.ls(self.dir, detail=False))
        names = [n for n in names if n.isdigit()]
        self.state = QueueState()
        for name in names:
            apply(self.state, self.fs.cat_file(f"{self.dir}/{name}"), now)
        self._segments = names
        self._seq = int(names[-1]) + 1 if names else 0

    @contextlib.contextmanager
    def locked(self, now: float) -> Iterator[QueueState]:
        try:
            yield self.state
        finally:
            change = take_change(self.state)
            if change is not None:
                self._write(frame(change))
                if len(self._segments) > self._compact_at:
                    self._compact()

    def _write(self, data: bytes) -> str:
        name = f"{self._seq:020d}"
        self._seq += 1
        self.fs.pipe_file(f"{self.dir}/{name}", data)
        self._segments.append(name)
        return name

    def _compact(self) -> None:
        old = list(self._segments)
        self._segments = []
        self._write(frame(snapshot(self.state)))
        for name in old:
            self.fs.rm_file(f"{self.dir}/{name}")
