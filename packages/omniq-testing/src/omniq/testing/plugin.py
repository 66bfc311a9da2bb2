"""OmniQ's pytest plugin (entry point ``pytest11``: ``omniq``): the testing kit's
fixtures, loaded by pytest wherever omniq-testing is installed.

- ``omniq_clock``: a ``ManualClock`` installed as OmniQ's clock for the test;
- ``omniq``: a fresh, open ``MemoryOmniQ`` for the blocking API (``*_sync`` calls);
- ``async_omniq``: the same for the async API, opened on the test's event loop (an
  async test, e.g. ``@pytest.mark.anyio``);
- ``inline_omniq``: a ``MemoryOmniQ(inline=True)``: each task runs at enqueue.

All of them share the test's ``omniq_clock``. OmniQ is imported when a fixture is
first used, so merely having the plugin installed costs a test run nothing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from omniq.models import ManualClock

    from ._kit import MemoryOmniQ

__all__ = ["async_omniq", "inline_omniq", "omniq", "omniq_clock"]


@pytest.fixture
def omniq_clock() -> Iterator[ManualClock]:
    """A ManualClock (starting at the wall clock's time) that OmniQ reads during the
    test: ``omniq_clock.advance(seconds)``, ``omniq_clock.set(datetime)``."""
    from omniq.models import ManualClock, use_clock

    clock = ManualClock()
    with use_clock(clock):
        yield clock


@pytest.fixture
def omniq(omniq_clock: ManualClock) -> Iterator[MemoryOmniQ]:
    """A fresh in-memory OmniQ for this test, open for the blocking (``*_sync``) API."""
    from ._kit import MemoryOmniQ

    oq = MemoryOmniQ(clock=omniq_clock)
    oq.open_sync()
    try:
        yield oq
    finally:
        oq.close_sync()


@pytest.fixture
def inline_omniq(omniq_clock: ManualClock) -> Iterator[MemoryOmniQ]:
    """A fresh in-memory OmniQ that runs each task at enqueue (``inline=True``)."""
    from ._kit import MemoryOmniQ

    oq = MemoryOmniQ(clock=omniq_clock, inline=True)
    oq.open_sync()
    try:
        yield oq
    finally:
        oq.close_sync()


@pytest.fixture
async def async_omniq(omniq_clock: ManualClock) -> AsyncIterator[MemoryOmniQ]:
    """A fresh in-memory OmniQ for this test's event loop (the async API)."""
    from ._kit import MemoryOmniQ

    oq = MemoryOmniQ(clock=omniq_clock)
    async with oq:
        yield oq
