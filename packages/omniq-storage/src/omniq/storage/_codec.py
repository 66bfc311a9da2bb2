"""Reusable msgspec codecs: msgpack for tasks, results and schedules, JSON for events.

Encoders and typed decoders are built once and shared (msgspec caches per type), so
backends never pickle anything and decoding validates the shape of stored data.
"""

from __future__ import annotations

from typing import Any

import msgspec

from omniq.models import Schedule, Task, TaskEvent, TaskResult

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


def decode_task(data: bytes) -> Task:
    return _task.decode(data)


def decode_result(data: bytes) -> TaskResult:
    return _result.decode(data)


def decode_schedule(data: bytes) -> Schedule:
    return _schedule.decode(data)


def encode_event(event: TaskEvent) -> bytes:
    """An event as a JSON object (plain data, readable by any tool)."""
    return _json.encode(event)


def decode_event(data: bytes | str) -> TaskEvent:
    return _event.decode(data)
