"""Shared pytest configuration for every package's tests and the cross-package suites."""

from __future__ import annotations

import pytest


@pytest.fixture
def anyio_backend() -> str:
    """OmniQ's async core targets asyncio (anyio is used for its primitives)."""
    return "asyncio"
