"""Time-sortable unique ids (UUIDv7 layout, RFC 9562)."""

from __future__ import annotations

import random
import threading
import time

__all__ = ["new_id"]

_lock = threading.Lock()
# The random module's shared generator is seeded from os.urandom and reseeded in a forked
# child (os.register_at_fork), so processes never repeat each other's bits; ids need
# uniqueness, not secrecy, and this is ~10x cheaper than os.urandom per id.
_rand = random.getrandbits
_last_ms = 0
_seq = 0


def new_id() -> str:
    """Return a new UUIDv7 string; ids sort by creation time, also within one millisecond.

    48 bits of Unix milliseconds, a 12-bit per-process sequence that keeps ids made in
    the same millisecond ordered, and 62 random bits so that ids from different
    processes and hosts do not collide.
    """
    global _last_ms, _seq
    with _lock:
        ms = time.time_ns() // 1_000_000
        if ms > _last_ms:
            _last_ms, _seq = ms, _rand(10)
        else:
            _seq += 1
            if _seq > 0xFFF:  # sequence exhausted: borrow the next millisecond
                _last_ms += 1
                _seq = 0
            ms = _last_ms
        rand = _rand(62)
    value = (ms << 80) | (0x7 << 76) | (_seq << 64) | (0b10 << 62) | rand
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
