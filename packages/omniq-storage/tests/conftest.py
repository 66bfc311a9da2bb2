"""Fixtures shared by omniq-storage's own tests."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator

import pytest

from omniq.storage import open_storage
from omniq.storage._backends.nats._backend import NatsBackend

NATS_URL = os.environ.get("OMNIQ_TEST_NATS_URL", "nats://127.0.0.1:4222")


@pytest.fixture
async def nats_backend() -> AsyncIterator[NatsBackend]:
    """A connected NATS backend in a namespace of its own, dropped after the test."""
    be = open_storage(f"{NATS_URL}?namespace=OQTEST{uuid.uuid4().hex[:12].upper()}")
    assert isinstance(be, NatsBackend)
    async with be:
        try:
            yield be
        finally:
            await be.drop()
