"""The conformance suite's pytest plugin: parametrizes every suite test over backend
specs (as anyio does over event loops).

The specs of a test module are its ``CONFORMANCE_SPECS`` (a list of ``BackendSpec``),
else those registered with ``register_spec``. Load the plugin with
``pytest_plugins = ["omniq.storage.testing.plugin"]`` in the root conftest (or
``-p omniq.storage.testing.plugin``), or import its names into a conftest.
``@pytest.mark.backends_with("multiprocess")`` restricts a test to the specs having
those capability flags; ``OMNIQ_CONFORMANCE_BACKENDS=id,id`` runs only those ids.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from omniq.storage import Backend

from ._specs import SPECS, BackendSpec

__all__ = [
    "backend_id",
    "pytest_configure",
    "pytest_generate_tests",
    "specs_for",
    "store",
    "store_and_url",
]

ONLY_VAR = "OMNIQ_CONFORMANCE_BACKENDS"
"""Comma-separated spec ids to run (default: all registered)."""


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "backends_with(*flags): run only on backends having these capability flags"
    )


def specs_for(metafunc: pytest.Metafunc) -> list[BackendSpec]:
    """The specs a test runs against: its module's ``CONFORMANCE_SPECS`` or the
    registered ones, those with the test's ``backends_with`` flags, those named in
    ``OMNIQ_CONFORMANCE_BACKENDS``."""
    declared = getattr(metafunc.module, "CONFORMANCE_SPECS", None)
    specs = list(declared) if declared is not None else list(SPECS.values())
    marker = metafunc.definition.get_closest_marker("backends_with")
    if marker is not None:
        specs = [s for s in specs if all(getattr(s, flag) for flag in marker.args)]
    only = os.environ.get(ONLY_VAR)
    if only:
        wanted = set(only.split(","))
        specs = [s for s in specs if s.id in wanted]
    return specs


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend_spec" not in metafunc.fixturenames:
        return
    specs = specs_for(metafunc)
    metafunc.parametrize("backend_spec", specs, ids=[s.id for s in specs])


@pytest.fixture
def backend_id(backend_spec: BackendSpec) -> str:
    """The id of the backend spec this test runs against."""
    return backend_spec.id


@pytest.fixture
async def store_and_url(
    backend_spec: BackendSpec, tmp_path: Path
) -> AsyncIterator[tuple[Backend, str]]:
    """A connected backend on a fresh store, and the URL that reaches that store."""
    async with backend_spec.open(tmp_path) as pair:
        yield pair


@pytest.fixture
def store(store_and_url: tuple[Backend, str]) -> Backend:
    """A connected backend on a fresh store."""
    return store_and_url[0]
