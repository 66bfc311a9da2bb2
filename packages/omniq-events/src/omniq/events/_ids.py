"""Event ids: the UUIDv7 layout of ``omniq.models.new_id``, made cheaply.

``new_id`` reads ``os.urandom`` twice per id, a system call that costs microseconds
on some hosts; event ids are made on the task hot path, so they take their 62 random
bits from the ``random`` module's generator instead (seeded from the OS, re-seeded in
forked children by the standard library). Ids still sort by creation time, also within
one millisecond of this process, and do not collide across processes or hosts.
"""

from __future__ import annotations

import random
import threading
import time

__all__ = ["event_id"]

_lock = threading.Lock()
_last_ms = 0
_seq = 0
_getrandbits = random.getrandbits


def event_id() -> str:
    """A new time-sortable UUIDv7 string for an event."""
    global _last_ms, _seq
    with _lock:
        ms = time.time_ns() // 1_000_000
        if ms > _last_ms:
            _last_ms, _seq = ms, _getrandbits(10)
        else:
            _seq += 1
            if _seq > 0xFFF:  # sequence exhausted: borrow the next millisecond
                _last_ms += 1
                _seq = 0
            ms = _last_ms
        seq = _seq
    value = (ms << 80) | (0x7 << 76) | (seq << 64) | (0b10 << 62) | _getrandbits(62)
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
