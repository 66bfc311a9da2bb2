"""Task functions the scheduler tests schedule."""

from __future__ import annotations


def tick() -> str:
    return "tick"
