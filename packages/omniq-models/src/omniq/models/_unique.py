"""Unique jobs: the ``unique_for`` window on an idempotency key, ``on_conflict`` and the
key derived from a call (``key="args"``)."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from typing import Any

import msgspec

from ._errors import InvalidTaskError

__all__ = ["ARGS_KEY", "ON_CONFLICT", "args_key", "validate_unique"]

ARGS_KEY = "args"
"""The ``key`` spelling that asks for a key derived from the function and arguments."""
ON_CONFLICT = ("return", "replace")
"""Accepted ``on_conflict`` values."""
_MAX_UNIQUE_FOR = 10 * 365 * 86400.0
_encoder = msgspec.msgpack.Encoder(order="sorted")


def args_key(func: str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> str:
    """The idempotency key of calling ``func`` (an import path) with ``args``/``kwargs``:
    ``"args:"`` and the SHA-256 of the path and the msgpack encoding of the arguments,
    with mapping keys sorted. Two calls share it when their arguments encode alike:
    ``f(1)`` and ``f(x=1)`` differ, ``{"a": 1, "b": 2}`` and ``{"b": 2, "a": 1}`` agree,
    a tuple and a list with the same items agree. Arguments msgspec cannot encode
    raise InvalidTaskError."""
    try:
        blob = _encoder.encode([list(args), dict(kwargs)])
    except (TypeError, ValueError, OverflowError) as exc:
        raise InvalidTaskError(f'key="args" needs msgspec-encodable arguments: {exc}') from None
    digest = hashlib.sha256(func.encode("utf-8", "surrogatepass") + b"\0" + blob).hexdigest()
    return f"args:{digest}"


def validate_unique(unique_for: object, on_conflict: object, key: object) -> None:
    """Raise InvalidTaskError unless ``unique_for`` is None or a finite number of seconds
    from 0 to ten years, ``on_conflict`` is None or one of ``ON_CONFLICT``, and a key
    is set when either is given."""
    if unique_for is not None:
        if isinstance(unique_for, bool) or not isinstance(unique_for, int | float):
            raise InvalidTaskError(
                f"unique_for must be a number of seconds, got {type(unique_for).__name__}"
            )
        if not (math.isfinite(unique_for) and 0 <= unique_for <= _MAX_UNIQUE_FOR):
            raise InvalidTaskError(
                f"unique_for={unique_for!r} is out of bounds: expected 0 to {_MAX_UNIQUE_FOR:.0f}"
            )
    if on_conflict is not None and on_conflict not in ON_CONFLICT:
        raise InvalidTaskError(
            f"on_conflict={on_conflict!r}: expected one of {', '.join(ON_CONFLICT)}"
        )
    if key is None and (unique_for is not None or on_conflict not in (None, "return")):
        raise InvalidTaskError("unique_for and on_conflict need a key")
