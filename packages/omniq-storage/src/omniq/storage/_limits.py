"""Payload limits: the largest task or result a store accepts, and the check that refuses
a batch holding a larger one before anything of it is stored.

The limit in force is the smaller of the setting (``OMNIQ_MAX_PAYLOAD_BYTES``, given to
the store as ``PayloadLimit.setting``) and the engine's own hard limit, which each
backend learns at connect (NATS ``max_payload`` from the server's INFO, Redis
``proto-max-bulk-len``, PostgreSQL's 1 GB field limit, SQLite's ``SQLITE_MAX_LENGTH``).
The size checked is the record as the store writes it: the msgpack envelope of the task
or result, arguments and everything else included.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import TypeVar

from omniq.models import PayloadTooLargeError, Task, TaskResult, settings

from ._codec import encode

__all__ = ["PayloadLimit", "chunks", "fmt_bytes"]

T = TypeVar("T")

_ROUGH_FLOOR = 64 * 1024
"""Below this many payload bytes a task is not encoded just to be measured: its other
fields cannot bring it near any engine's limit (the smallest, NATS's, is 1 MiB by
default) unless its option lists are huge, which the rough size counts too."""


def fmt_bytes(n: int) -> str:
    """``16 MiB`` for whole binary units, else the count with thousands separators."""
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size and n % size == 0:
            return f"{n // size} {unit}"
    return f"{n:,} bytes"


def _rough(task: Task) -> int:
    """An upper-bound-ish size of a task without encoding it: payload bytes plus a
    generous allowance per listed id and per nested callback task."""
    n = 1024 + len(task.func) + len(task.key or "") + 64 * len(task.depends_on)
    if task.payload is not None:
        n += len(task.payload.data)
    if task.func_payload is not None:
        n += len(task.func_payload.data)
    for t in (*task.on_success, *task.on_failure):
        n += _rough(t)
    return n


class PayloadLimit:
    """The payload limit of one backend's stores.

    ``setting`` is ``OMNIQ_MAX_PAYLOAD_BYTES`` (the queue sets it from its settings;
    default the 16 MiB constant); ``engine`` is the engine's hard limit once connected
    (None until then, or where the engine has none: memory, file); ``reserve`` is what
    the engine needs on top of the record (NATS wraps a task record in its work
    message). ``effective`` is what a record may take.
    """

    def __init__(
        self,
        engine_name: str,
        *,
        engine: int | None = None,
        source: str = "",
        reserve: int = 0,
        setting: int = settings.MAX_PAYLOAD_BYTES,
    ) -> None:
        self.engine_name = engine_name
        self.engine = engine
        self.source = source
        """What the engine limit is, e.g. ``max_payload`` or ``proto-max-bulk-len``."""
        self.reserve = reserve
        self.setting = setting

    @property
    def effective(self) -> int:
        """The largest record, in bytes, this store accepts."""
        if self.engine is None:
            return self.setting
        return max(0, min(self.setting, self.engine - self.reserve))

    def describe(self) -> str:
        """The limit in force and where it comes from, for error messages."""
        setting = f"OMNIQ_MAX_PAYLOAD_BYTES={fmt_bytes(self.setting)}"
        engine = f"{self.engine_name} {self.source}".strip()
        if self.engine is None:
            return setting
        if self.setting <= self.engine - self.reserve:
            return f"{setting} ({engine} {self.engine:,})"
        framing = f" less {self.reserve:,} of framing" if self.reserve else ""
        return f"{engine} {self.engine:,}{framing} (server limit; {setting})"

    def error(self, subject: str, size: int, what: str = "bytes") -> PayloadTooLargeError:
        """The error refusing ``subject`` (``task <id>``) of ``size`` bytes."""
        return PayloadTooLargeError(
            f"{subject}: {size:,} {what} exceed {self.describe()}",
            subject=subject,
            size=size,
            limit=self.effective,
        )

    def task_size(self, task: Task) -> int:
        """The task's stored size, or its rough size when that is far below the limit."""
        rough = _rough(task)
        if rough <= _ROUGH_FLOOR and rough * 4 <= self.effective:
            return rough
        return len(encode(task))

    def check_tasks(self, tasks: Iterable[Task]) -> None:
        """Raise ``PayloadTooLargeError`` naming the first task larger than the limit."""
        limit = self.effective
        for t in tasks:
            size = self.task_size(t)
            if size > limit:
                args = 0 if t.payload is None else len(t.payload.data)
                raise self.error(
                    f"task {t.id}", size, f"bytes as stored ({args:,} bytes of arguments)"
                )

    def result_error(self, result: TaskResult) -> PayloadTooLargeError | None:
        """The error for a result larger than the limit, else None."""
        data = 0 if result.payload is None else len(result.payload.data)
        if data + _ROUGH_FLOOR <= self.effective:
            return None
        size = len(encode(result))
        if size <= self.effective:
            return None
        return self.error(f"result of task {result.task_id}", size)

    def check_results(self, results: Iterable[TaskResult]) -> None:
        """Raise ``PayloadTooLargeError`` naming the first result larger than the limit."""
        for r in results:
            err = self.result_error(r)
            if err is not None:
                raise err


def chunks(
    items: Sequence[T], sizes: Sequence[int], *, max_count: int, max_bytes: int
) -> Iterator[tuple[int, int]]:
    """Split ``items`` into consecutive ``[start, end)`` ranges of at most ``max_count``
    items and at most ``max_bytes`` bytes (``sizes[i]`` per item; an item larger than
    ``max_bytes`` goes alone)."""
    start, total = 0, 0
    for i, size in enumerate(sizes):
        if i > start and (i - start >= max_count or total + size > max_bytes):
            yield start, i
            start, total = i, 0
        total += size
    if start < len(items):
        yield start, len(items)
