"""Task functions of the chain and group tests."""

from __future__ import annotations

from typing import Any


def add(a: int, b: int) -> int:
    return a + b


def fail(*args: Any) -> None:
    raise RuntimeError("link failed")


def collect(values: list[Any]) -> list[Any]:
    """A group callback: returns what it received."""
    return values
