"""What every engine's worker registry shares: the entry codec, and the in-process
registry of the memory backend.

An entry is stored as the msgpack of its ``WorkerInfo`` beside its ``expires_at`` (a
column, a sorted-set score or a field of the record), so expired entries are found
without decoding them.
"""

from __future__ import annotations

import builtins
import threading
from collections.abc import Iterable, Sequence

import msgspec

from omniq.models import WorkerInfo
from omniq.models import now as _now

from ._interfaces import WorkerRegistry

__all__ = ["InProcessWorkers", "alive", "decode_worker", "encode_worker"]

_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(WorkerInfo)


def encode_worker(info: WorkerInfo) -> bytes:
    """The stored form of a registry entry (msgpack)."""
    return _encoder.encode(info)


def decode_worker(data: bytes) -> WorkerInfo | None:
    """A stored registry entry; None for bytes that are not one (an entry is rewritten
    at the worker's next refresh, so a bad one is skipped, never fatal)."""
    try:
        return _decoder.decode(data)
    except (msgspec.DecodeError, TypeError, ValueError, OverflowError):
        return None


def alive(entries: Iterable[WorkerInfo | None], now: float | None) -> list[WorkerInfo]:
    """The entries still counting at ``now`` (default: the current time), by id."""
    t = _now() if now is None else now
    return sorted((w for w in entries if w is not None and w.alive(t)), key=lambda w: w.id)


class InProcessWorkers(WorkerRegistry):
    """A registry in this process's memory (the memory backend): a dict under a lock,
    shared by the threads of the process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[str, WorkerInfo] = {}

    async def register(self, workers: Sequence[WorkerInfo]) -> None:
        with self._lock:
            for w in workers:
                self._entries[w.id] = w

    async def deregister(self, worker_ids: Sequence[str]) -> int:
        with self._lock:
            return sum(1 for i in worker_ids if self._entries.pop(i, None) is not None)

    async def list(self, *, now: float | None = None) -> builtins.list[WorkerInfo]:
        with self._lock:
            entries = builtins.list(self._entries.values())
        return alive(entries, now)

    async def purge_expired(self, *, now: float | None = None) -> int:
        t = _now() if now is None else now
        with self._lock:
            doomed = [i for i, w in self._entries.items() if not w.alive(t)]
            for i in doomed:
                del self._entries[i]
        return len(doomed)
