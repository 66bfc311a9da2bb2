"""Task functions the hardening tests enqueue (importable by a worker)."""

from __future__ import annotations


async def double(x: int) -> int:
    return 2 * x


async def boom() -> None:
    raise RuntimeError("boom")
