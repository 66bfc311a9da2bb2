"""End-to-end fixtures: one OmniQ per test on each backend."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
for p in (str(HERE), str(ROOT)):
    if p not in sys.path:
        sys.path.insert(0, p)

from omniq.core import OmniQ  # noqa: E402
from omniq.storage import open_storage  # noqa: E402
from omniq.storage.testing import builtin_specs  # noqa: E402

BACKENDS = {spec.id: spec for spec in builtin_specs()}
"""The conformance suite's specs of the omniq-storage backends, by id."""

E2E_BACKENDS = ["memory", "sqlite", "file-local", "redis", "postgres", "nats"]
MULTIPROCESS = {"sqlite", "file-local", "redis", "postgres", "nats"}


def _available(backend_id: str) -> bool:
    spec = BACKENDS.get(backend_id)
    if spec is None:
        return False
    try:
        open_storage(spec.url(Path("/tmp/omniq-probe")))
    except Exception:
        return False
    return True


LANDED = [b for b in E2E_BACKENDS if _available(b)]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend_id" in metafunc.fixturenames:
        ids = LANDED
        if metafunc.definition.get_closest_marker("multiprocess") is not None:
            ids = [b for b in LANDED if b in MULTIPROCESS]
        metafunc.parametrize("backend_id", ids)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "multiprocess: needs a store shared between processes")


@pytest.fixture
def store_url(backend_id: str, tmp_path: Path) -> object:
    spec = BACKENDS[backend_id]
    url = spec.url(tmp_path)
    yield url
    if spec.cleanup is not None:
        spec.cleanup(url)


def events_url_for(url: str) -> str:
    """The task store holds events where the engine supports it, else memory."""
    backend = open_storage(url)
    return url if backend.events is not None else "memory://"


@pytest.fixture
def make_oq(store_url: str) -> Callable[..., OmniQ]:
    def make(**overrides: object) -> OmniQ:
        overrides.setdefault("retry_delay", 0.01)
        overrides.setdefault("lease_seconds", 5.0)
        return OmniQ(store_url, event_storage=events_url_for(store_url), **overrides)  # type: ignore[arg-type]

    return make


@pytest.fixture
async def oq(make_oq: Callable[..., OmniQ]) -> AsyncIterator[OmniQ]:
    q = make_oq()
    async with q:
        yield q
