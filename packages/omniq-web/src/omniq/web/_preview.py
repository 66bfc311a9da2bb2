"""Show stored payloads without running any of their code.

msgpack payloads (what msgspec wrote) are decoded as plain data: msgpack cannot carry
code. dill payloads, and any format this module does not know, are shown as
``<binary N bytes>`` and never deserialized: unpickling runs code chosen by whoever
wrote the payload.
"""

from __future__ import annotations

import json
from typing import Any

import msgspec

from omniq.models import Payload

__all__ = ["preview"]

LIMIT = 4000
"""Characters shown of a decoded payload; the rest is cut with a note."""


def _plain(value: Any) -> Any:
    if isinstance(value, msgspec.msgpack.Ext):
        return f"<extension type {value.code}, {memoryview(value.data).nbytes} bytes>"
    if isinstance(value, bytes | bytearray):
        return f"<binary {len(value)} bytes>"
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=repr)


def preview(payload: Payload | None) -> str:
    """Text for ``payload``: JSON of the decoded msgpack data, else ``<binary N bytes>``."""
    if payload is None:
        return ""
    if payload.format != "msgpack":
        return f"<binary {len(payload.data)} bytes>"
    try:
        value = msgspec.msgpack.decode(payload.data)
    except msgspec.DecodeError:
        return f"<binary {len(payload.data)} bytes, not valid msgpack>"
    value = _plain(value)
    if isinstance(value, list) and len(value) == 2 and isinstance(value[1], dict):
        args, kwargs = value  # the (args, kwargs) pair of a task's arguments
        text = "args: " + _json(args) + ("\nkwargs: " + _json(kwargs) if kwargs else "")
    else:
        text = _json(value)
    if len(text) > LIMIT:
        text = text[:LIMIT] + f"\n... ({len(text) - LIMIT} more characters)"
    return text
