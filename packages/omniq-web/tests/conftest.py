"""A SQLite store with events, a seeding OmniQ and the dashboard over the same file."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from omniq.core import OmniQ
from omniq.web import create_app


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'oq.db'}"


@pytest.fixture
def seed(url: str) -> Iterator[OmniQ]:
    with OmniQ(url, event_storage=url) as oq:
        yield oq


@pytest.fixture
def client(url: str, seed: OmniQ) -> Iterator[TestClient]:
    with TestClient(create_app(url, events_url=url)) as c:
        yield c


def token(client: TestClient, path: str = "/") -> str:
    """The CSRF token of a page's forms (the cookie holds the same)."""
    html = client.get(path).text
    m = re.search(r'name="csrf" value="([^"]+)"', html)
    assert m, "no form on the page"
    return m.group(1)
