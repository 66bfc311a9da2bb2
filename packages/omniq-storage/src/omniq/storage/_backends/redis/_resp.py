"""RESP encoding of commands for the Redis backend's own connections (the subscriber
and the lane): a few arguments, no options, cheaper than redis-py's general packer."""

from __future__ import annotations

from omniq.models import StorageError

__all__ = ["pack_command"]


def pack_command(*args: str | bytes | int | float) -> bytes:
    """``args`` as one RESP array of bulk strings (str as UTF-8, int in decimal, float
    as its shortest round-tripping repr, as redis-py sends it)."""
    parts = [b"*%d\r\n" % len(args)]
    for a in args:
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
        parts.append(b"$%d\r\n%s\r\n" % (len(b), b))
    return b"".join(parts)
