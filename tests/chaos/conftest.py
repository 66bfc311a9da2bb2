"""Chaos suite fixtures: backend URLs from the conformance registry, and a summary of
every scenario's figures at the end of the session (shown without ``-s``)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
for p in (str(HERE), str(ROOT)):
    if p not in sys.path:
        sys.path.insert(0, p)

from chaos_fleet import FIGURES  # noqa: E402

from omniq.storage.testing import builtin_specs  # noqa: E402

BACKENDS = {spec.id: spec for spec in builtin_specs()}
"""The conformance suite's specs of the omniq-storage backends, by id."""


@pytest.fixture
def chaos_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh store of the backend named by the test's ``backend_id`` parameter."""
    spec = BACKENDS[request.getfixturevalue("backend_id")]
    url = spec.url(tmp_path)
    yield url
    if spec.cleanup is not None:
        spec.cleanup(url)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if FIGURES:
        terminalreporter.section("chaos figures")
        for line in FIGURES:
            terminalreporter.write_line(line)
