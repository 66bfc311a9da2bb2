"""Task functions of the namespace tests, importable in worker processes."""

from __future__ import annotations

import time


async def stamp(sent: float) -> float:
    """Seconds from enqueue (``sent``, the client's clock) to this start (W2 latency);
    every namespace shares the machine's clock."""
    return time.time() - sent


def tick() -> str:
    """What a scheduled run does: nothing worth waiting for."""
    return "tick"
