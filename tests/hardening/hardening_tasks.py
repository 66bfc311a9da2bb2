"""Task functions for the hardening suite (importable by path in workers)."""

from __future__ import annotations


def blob(n: int) -> bytes:
    """A return value of ``n`` bytes."""
    return b"x" * n


def one(path: str) -> int:
    """Append a line to ``path`` (to count runs) and return 1."""
    with open(path, "a") as f:
        f.write("ran\n")
    return 1


async def double(x: int) -> int:
    return 2 * x


async def boom() -> None:
    raise RuntimeError("boom")
