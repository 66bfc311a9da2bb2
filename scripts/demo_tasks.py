"""Task functions for scripts/demo.py (a module, so workers can import them by path)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path


def resize(image: int, width: int) -> dict[str, int]:
    """A blocking task (runs on a thread worker)."""
    time.sleep(0.002)
    return {"image": image, "width": width, "bytes": image * width % 9973}


async def fetch(page: int) -> str:
    """A coroutine task (runs on the async worker)."""
    await asyncio.sleep(0.005)
    return f"page-{page}: {len(str(page)) * 42} words"


def flaky_payment(counter: str) -> str:
    """Fails twice, then succeeds: shows retries with backoff."""
    p = Path(counter)
    n = int(p.read_text()) if p.exists() else 0
    p.write_text(str(n + 1))
    if n < 2:
        raise ConnectionError(f"payment gateway hiccup #{n + 1}")
    return "charged after 3 attempts"


def extract(source: str) -> str:
    return f"rows from {source}"


def transform(step: str) -> str:
    return f"{step}: transformed"


def load(step: str) -> str:
    return f"{step}: loaded"


def stuck(seconds: float) -> str:
    """Outlives its timeout."""
    time.sleep(seconds)
    return "never"
