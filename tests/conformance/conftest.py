"""Parametrize every conformance test over the registered backends (as anyio does
over event loops). ``@pytest.mark.backends_with("multiprocess")`` restricts a test to
the backends having those capability flags."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from omniq.storage import Backend

from .backends import BACKENDS, ids_with

_ONLY = os.environ.get("OMNIQ_CONFORMANCE_BACKENDS")
"""Comma-separated backend ids to run (default: all registered)."""


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "backends_with(*flags): run only on backends having these capability flags"
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend_id" not in metafunc.fixturenames:
        return
    marker = metafunc.definition.get_closest_marker("backends_with")
    ids = ids_with(*marker.args) if marker is not None else list(BACKENDS)
    if _ONLY:
        wanted = set(_ONLY.split(","))
        ids = [i for i in ids if i in wanted]
    metafunc.parametrize("backend_id", ids)


@pytest.fixture
async def store_and_url(backend_id: str, tmp_path: Path) -> AsyncIterator[tuple[Backend, str]]:
    async with BACKENDS[backend_id].open(tmp_path) as pair:
        yield pair


@pytest.fixture
def store(store_and_url: tuple[Backend, str]) -> Backend:
    return store_and_url[0]
