"""The counts a costly store shares between requests stay true to the store.

``budget = 0`` makes every read count as costly, as with 100,000 tasks, so the pages
are answered from the app's shared read and a background read replaces it.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator

import pytest
from starlette.testclient import TestClient

from omniq.core import OmniQ
from omniq.models import TaskStatus
from omniq.web import create_app

from .conftest import token


@pytest.fixture
def shared(url: str, seed: OmniQ) -> Iterator[TestClient]:
    app = create_app(url, poll=0.2)
    app.state.counts.budget = 0.0
    app.state.counts.share = 1.0
    with TestClient(app) as c:
        yield c


def poll_until(ok: Callable[[], bool], timeout: float) -> None:
    """Ask until ``ok()`` holds (each page request may start the background read)."""
    deadline = time.monotonic() + timeout
    while not ok():
        assert time.monotonic() < deadline, "the shared counts never caught up"
        time.sleep(0.05)


def _pending(html: str, queue: str) -> int | None:
    row = re.search(rf'<tr data-queue="{queue}">(.*?)</tr>', html, re.S)
    if row is None:
        return None
    return int(re.findall(r'<td class="n"><a [^>]*>(\d+)</a></td>', row.group(1))[0])


def _metric(text: str, queue: str, status: str) -> float | None:
    m = re.search(rf'omniq_queue_tasks\{{queue="{queue}",status="{status}"\}} ([0-9.]+)', text)
    return float(m.group(1)) if m else None


def _truth(seed: OmniQ, queue: str) -> int:
    return next(
        q.counts.get(TaskStatus.PENDING, 0) for q in seed.list_queues_sync() if q.name == queue
    )


def test_shared_counts_follow_the_store(shared: TestClient, seed: OmniQ) -> None:
    seed.enqueue_many_sync([("math:sqrt", (4,))] * 3, queue="q")
    assert _pending(shared.get("/").text, "q") == 3
    seed.enqueue_many_sync([("math:sqrt", (4,))] * 5, queue="q")
    # Pages keep answering from the shared read until a background read replaces it.
    poll_until(lambda: _pending(shared.get("/fragments/queues").text, "q") == 8, timeout=10)
    assert _pending(shared.get("/").text, "q") == _truth(seed, "q") == 8
    seed.run_worker_sync(queues=["q"], burst=True, handle_signals=False)
    poll_until(lambda: _metric(shared.get("/metrics").text, "q", "success") == 8.0, timeout=10)
    assert _metric(shared.get("/metrics").text, "q", "pending") == 0.0
    assert _pending(shared.get("/").text, "q") == _truth(seed, "q") == 0


def test_shared_counts_state_their_age(url: str, seed: OmniQ) -> None:
    seed.enqueue_sync("math:sqrt", (4,), queue="q")
    app = create_app(url, poll=3600)
    app.state.counts.budget = 0.0
    with TestClient(app) as c:
        assert "counts-age" not in c.get("/").text
        poll_until(lambda: "counts-age" in c.get("/fragments/queues").text, timeout=10)
        assert re.search(r"Counts read [0-9.]+s ago", c.get("/").text)


def test_an_action_drops_the_shared_counts(url: str, seed: OmniQ) -> None:
    seed.enqueue_sync("math:sqrt", (4,), queue="q")
    app = create_app(url, poll=3600)
    app.state.counts.budget = 0.0
    with TestClient(app) as c:
        assert 'class="paused"' not in c.get("/").text
        seed.enqueue_sync("math:sqrt", (4,), queue="q")
        assert _pending(c.get("/").text, "q") == 1  # shared, an hour from a refresh
        c.post("/queues/q/pause", data={"csrf": token(c)})
        html = c.get("/").text
        assert 'class="paused"' in html and _pending(html, "q") == 2
