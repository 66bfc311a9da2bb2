"""RESP encoding of commands for the Redis backend's own connections (the subscriber
and the lane): a few arguments, no options, cheaper than redis-py's general packer."""

from __future__ import annotations

import functools
from collections.abc import Sequence

from omniq.models import StorageError

__all__ = ["pack_command", "pack_evalsha"]


def _bulk(a: str | bytes | int | float) -> bytes:
    if isinstance(a, bytes):
        b = a
    elif isinstance(a, str):
        b = a.encode()
    elif isinstance(a, int):
        b = b"%d" % a
    elif isinstance(a, float):
        b = repr(a).encode()
    else:
        raise StorageError(f"cannot send {type(a).__name__} to redis: {a!r}")
    return b"$%d\r\n%s\r\n" % (len(b), b)


def pack_command(*args: str | bytes | int | float) -> bytes:
    """``args`` as one RESP array of bulk strings (str as UTF-8, int in decimal, float
    as its shortest round-tripping repr, as redis-py sends it)."""
    return b"".join([b"*%d\r\n" % len(args), *map(_bulk, args)])


@functools.lru_cache(maxsize=256)
def _evalsha_head(sha: str, nargs: int) -> bytes:
    return b"*%d\r\n$7\r\nEVALSHA\r\n$%d\r\n%s\r\n$1\r\n0\r\n" % (
        nargs + 3,
        len(sha),
        sha.encode(),
    )


def pack_evalsha(sha: str, args: Sequence[str | bytes | int | float]) -> bytes:
    """``EVALSHA sha 0 *args``, as ``pack_command`` packs it (the head cached per
    script and argument count; str and bytes arguments, the common ones, first)."""
    parts = [_evalsha_head(sha, len(args))]
    for a in args:
        t = type(a)
        if t is str:
            b = a.encode()  # type: ignore[union-attr]
        elif t is bytes:
            b = a
        else:
            parts.append(_bulk(a))
            continue
        parts.append(b"$%d\r\n%s\r\n" % (len(b), b))
    return b"".join(parts)
