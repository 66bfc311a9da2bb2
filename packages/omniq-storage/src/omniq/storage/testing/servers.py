"""Shared test servers for the server backends (PostgreSQL, Redis, NATS).

Each test gets its own namespace on the shared servers (a unique PostgreSQL schema, a
Redis key prefix, NATS stream/bucket names) and the cleanup drops it afterwards.
The servers' addresses come from ``OMNIQ_TEST_{POSTGRES,REDIS,NATS}_URL``.
"""

from __future__ import annotations

import asyncio
import os
import threading
import uuid
from collections.abc import Callable, Coroutine
from typing import Any
from urllib.parse import parse_qs, urlsplit

__all__ = ["NATS_URL", "POSTGRES_URL", "REDIS_URL", "drop_namespace", "unique_url"]

POSTGRES_URL = os.environ.get(
    "OMNIQ_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("OMNIQ_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
NATS_URL = os.environ.get("OMNIQ_TEST_NATS_URL", "nats://127.0.0.1:4222")

_PARAM = {"postgresql": "schema", "redis": "prefix", "nats": "namespace"}


def unique_url(engine: str) -> str:
    """A URL naming a fresh, empty namespace on the engine's shared test server."""
    tag = f"t{uuid.uuid4().hex[:16]}"
    if engine == "postgresql":
        return f"{POSTGRES_URL}?schema=omniq_{tag}"
    if engine == "redis":
        return f"{REDIS_URL}?prefix=omniq-{tag}:"
    return f"{NATS_URL}?namespace=OQ{tag.upper()}"


def _run(coro_fn: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Run a coroutine to completion on its own loop in a thread (the caller may be
    inside a running event loop)."""
    errors: list[BaseException] = []

    def target() -> None:
        try:
            asyncio.run(coro_fn())
        except BaseException as exc:
            errors.append(exc)

    th = threading.Thread(target=target)
    th.start()
    th.join(30)
    if errors:
        raise errors[0]


def drop_namespace(url: str) -> None:
    """Delete everything a test created under the namespace named in ``url``."""
    from omniq.storage import open_storage

    scheme = urlsplit(url).scheme.split("+")[0]
    scheme = "postgresql" if scheme == "postgres" else scheme
    ns = parse_qs(urlsplit(url).query).get(_PARAM.get(scheme, ""), [""])[0]
    if not ns:
        return

    async def drop() -> None:
        async with open_storage(url) as backend:
            await backend.drop()  # type: ignore[attr-defined]

    _run(drop)
