"""The pool's worker registry entry: a beat at start and on every renewal tick with the
ids of the tasks running then, one ``leave`` after a clean shutdown, and a failing
registry never stopping the pool."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

import pytest
from omniq_workers_testkit import MemorySink, MemorySource, agate, make_task

from omniq.workers import AsyncWorkerPool, WorkerPresence

pytestmark = pytest.mark.anyio


class RecordingPresence:
    """Records each beat's running ids and the leaves; can be made to fail."""

    def __init__(self, *, fail: bool = False) -> None:
        self.beats: list[list[str]] = []
        self.left = 0
        self.fail = fail
        self.changed = asyncio.Event()

    async def beat(self, running: Sequence[str]) -> None:
        self.beats.append(list(running))
        self.changed.set()
        if self.fail:
            raise ConnectionError("registry down")

    async def leave(self) -> None:
        self.left += 1
        if self.fail:
            raise ConnectionError("registry down")

    async def wait(self, ok: Callable[[], bool], timeout: float = 10.0) -> None:  # noqa: ASYNC109
        async with asyncio.timeout(timeout):
            while not ok():
                self.changed.clear()
                await self.changed.wait()


def test_recording_presence_fits_the_protocol() -> None:
    assert isinstance(RecordingPresence(), WorkerPresence)


async def test_beats_list_running_tasks_and_a_clean_stop_leaves() -> None:
    presence = RecordingPresence()
    held = make_task("ahold", "p1", "k1")
    source, sink = MemorySource([held]), MemorySink()
    pool = AsyncWorkerPool(source, sink, renew_interval=0.05, presence=presence)
    async with pool:
        await presence.wait(lambda: bool(presence.beats))  # the beat at start
        await presence.wait(lambda: [held.id] in presence.beats)
        assert presence.left == 0
        agate("p1").set()
        await sink.wait_for(1)
        await presence.wait(lambda: presence.beats[-1] == [])  # idle ticks beat too
    assert presence.left == 1


async def test_a_failing_registry_never_stops_the_pool() -> None:
    presence = RecordingPresence(fail=True)
    source, sink = MemorySource([make_task("aadd", 1, 2)]), MemorySink()
    pool = AsyncWorkerPool(source, sink, renew_interval=0.05, presence=presence)
    async with pool:
        await sink.wait_for(1)
        await presence.wait(lambda: len(presence.beats) >= 3)
    assert sink.outcomes[0].ok
    assert presence.left == 1
