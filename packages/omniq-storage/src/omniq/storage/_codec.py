"""Reusable msgspec codecs: msgpack for tasks, results and schedules, JSON for events.

Encoders and typed decoders are built once and shared (msgspec caches per type), so
backends never pickle anything and decoding validates the shape of stored data. A stored
record that does not decode (corrupt, truncated, tampered, or foreign bytes such as a
pickle written straight into the engine) raises ``CorruptRecordError`` (a
``StorageError``); nothing in it is run. ``_corrupt`` says what the engines do with one.
"""

from __future__ import annotations

from typing import Any

import msgspec

from omniq.models import CorruptRecordError, Schedule, Task, TaskEvent, TaskResult

__all__ = [
    "decode_event",
    "decode_result",
    "decode_schedule",
    "decode_task",
    "encode",
    "encode_event",
]

_msgpack = msgspec.msgpack.Encoder()
_json = msgspec.json.Encoder()
_task = msgspec.msgpack.Decoder(Task)
_result = msgspec.msgpack.Decoder(TaskResult)
_schedule = msgspec.msgpack.Decoder(Schedule)
_event = msgspec.json.Decoder(TaskEvent)


def encode(obj: Any) -> bytes:
    """msgpack bytes of a task, result, schedule or any msgspec-encodable value."""
    return _msgpack.encode(obj)


def _decode(decoder: Any, data: bytes | str, what: str) -> Any:
    try:
        return decoder.decode(data)
    except (msgspec.DecodeError, TypeError, ValueError, OverflowError) as exc:
        raise CorruptRecordError(f"stored {what} does not decode: {exc}") from exc


def decode_task(data: bytes) -> Task:
    """A stored task envelope; CorruptRecordError if the bytes are not one."""
    return _decode(_task, data, "task")  # type: ignore[no-any-return]


def decode_result(data: bytes) -> TaskResult:
    """A stored result; CorruptRecordError if the bytes are not one."""
    return _decode(_result, data, "result")  # type: ignore[no-any-return]


def decode_schedule(data: bytes) -> Schedule:
    """A stored schedule; CorruptRecordError if the bytes are not one."""
    return _decode(_schedule, data, "schedule")  # type: ignore[no-any-return]


def encode_event(event: TaskEvent) -> bytes:
    """An event as a JSON object (plain data, readable by any tool)."""
    return _json.encode(event)


def decode_event(data: bytes | str) -> TaskEvent:
    """A stored event; CorruptRecordError if the text is not one."""
    return _decode(_event, data, "event")  # type: ignore[no-any-return]
