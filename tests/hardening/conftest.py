"""Hardening tests: what a damaged store or a hostile input must not do.

Tests taking ``backend_id`` run over the conformance suite's backend registry
(``tests/conformance/backends.py``), restricted with ``@pytest.mark.engines(...)``.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
for p in (str(HERE), str(ROOT)):
    if p not in sys.path:
        sys.path.insert(0, p)

from tests.conformance.backends import BACKENDS  # noqa: E402

from omniq.storage import Backend  # noqa: E402


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "engines(*ids): run only on these backend ids")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend_id" not in metafunc.fixturenames:
        return
    marker = metafunc.definition.get_closest_marker("engines")
    ids = [i for i in BACKENDS if marker is None or i in marker.args]
    metafunc.parametrize("backend_id", ids)


@pytest.fixture
async def store_and_url(backend_id: str, tmp_path: Path) -> AsyncIterator[tuple[Backend, str]]:
    async with BACKENDS[backend_id].open(tmp_path) as pair:
        yield pair
