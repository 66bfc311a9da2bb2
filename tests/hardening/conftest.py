"""Hardening tests: what a damaged store or a hostile input must not do.

Real engines, one fresh namespace per test. Tests taking ``backend_id`` run over the
conformance suite's built-in backend specs (``omniq.storage.testing``), restricted with
``@pytest.mark.engines(...)`` or chosen with an explicit ``parametrize``.
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


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "engines(*ids): run only on these backend ids")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend_id" not in metafunc.fixturenames:
        return
    for mark in metafunc.definition.iter_markers("parametrize"):
        names = mark.args[0]
        names = [n.strip() for n in names.split(",")] if isinstance(names, str) else names
        if "backend_id" in names:
            return  # the test chose its backends itself
    marker = metafunc.definition.get_closest_marker("engines")
    ids = [i for i in BACKENDS if marker is None or i in marker.args]
    metafunc.parametrize("backend_id", ids)


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


@pytest.fixture
async def store_and_url(backend_id: str, tmp_path: Path) -> AsyncIterator[tuple[Backend, str]]:
    """A connected, isolated store of ``backend_id`` and the URL that reaches it."""
    async with BACKENDS[backend_id].open(tmp_path) as pair:
        yield pair
