"""Fixtures of the hardening suite: real engines, one fresh namespace per test.

Backends come from the conformance registry (``tests/conformance/backends.py``); tests
name the ones they run on with ``@pytest.mark.parametrize("backend_id", [...])``.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
for p in (str(HERE), str(ROOT)):
    if p not in sys.path:
        sys.path.insert(0, p)

from tests.conformance.backends import BACKENDS  # noqa: E402

from omniq.storage import Backend  # noqa: E402


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
