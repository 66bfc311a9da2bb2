"""Fixtures of the hardening suite: real engines, one fresh namespace per test.

Backends are the conformance suite's built-in specs (``omniq.storage.testing``); tests
name the ones they run on with ``@pytest.mark.parametrize("backend_id", [...])``.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from omniq.storage import Backend
from omniq.storage.testing import builtin_specs

HERE = str(Path(__file__).resolve().parent)
if HERE not in sys.path:  # workers import the suite's task module by name
    sys.path.insert(0, HERE)

BACKENDS = {spec.id: spec for spec in builtin_specs()}


@pytest.fixture
def store_url(backend_id: str, tmp_path: Path) -> Iterator[str]:
    """A URL naming a fresh store of ``backend_id``, dropped afterwards."""
    spec = BACKENDS[backend_id]
    url = spec.url(tmp_path)
    yield url
    if spec.cleanup is not None:
        spec.cleanup(url)


@pytest.fixture
async def store(backend_id: str, tmp_path: Path) -> AsyncIterator[Backend]:
    """A connected, isolated store of ``backend_id``."""
    async with BACKENDS[backend_id].open(tmp_path) as (backend, _):
        yield backend
