"""Fixtures: the real event stores (memory, SQLite, JSON-lines files, PostgreSQL)."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import anyio
import pytest

from omniq.storage import Backend, EventStorage, open_storage

POSTGRES_URL = os.environ.get(
    "OMNIQ_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
STORES = ["memory", "sqlite", "file", "postgres"]


def store_url(kind: str, tmp_path: Path) -> str:
    """A URL naming a fresh, empty event store of ``kind``."""
    if kind == "memory":
        return "memory://"
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / 'events.db'}"
    if kind == "file":
        return (tmp_path / "store").as_uri()
    return f"{POSTGRES_URL}?schema=omniq_ev_{uuid.uuid4().hex[:12]}"


async def drop(backend: Backend) -> None:
    dropper = getattr(backend, "drop", None)
    if dropper is not None:
        await dropper()


@pytest.fixture(params=STORES)
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def backend(kind: str, tmp_path: Path) -> AsyncIterator[Backend]:
    b = open_storage(store_url(kind, tmp_path))
    async with b:
        try:
            yield b
        finally:
            await drop(b)


@pytest.fixture
def store(backend: Backend) -> EventStorage:
    assert backend.events is not None
    return backend.events


@pytest.fixture
async def sqlite_store(tmp_path: Path) -> AsyncIterator[EventStorage]:
    async with open_storage(store_url("sqlite", tmp_path)) as b:
        assert b.events is not None
        yield b.events


@pytest.fixture
async def memory_store() -> AsyncIterator[EventStorage]:
    async with open_storage("memory://") as b:
        assert b.events is not None
        yield b.events


async def wait_until(
    predicate: Callable[[], Awaitable[bool]], limit: float = 10.0, what: str = "condition"
) -> None:
    """Poll ``predicate`` until true, failing after ``limit`` seconds."""
    deadline = time.monotonic() + limit
    while not await predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await anyio.sleep(0.005)
