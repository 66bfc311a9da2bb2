"""EventLogger / EventProcessor: blocking twins driven from plain threads."""

from __future__ import annotations

import threading
import traceback
from collections.abc import Iterator, Sequence
from pathlib import Path

import anyio
import pytest

from omniq.events import EventLogger, EventProcessor
from omniq.models import BackendUnavailableError, EventType, TaskEvent, now
from omniq.storage import EventStorage, open_storage

from .conftest import drop, store_url


class PurgeFails(EventStorage):
    """A real memory store whose ``purge`` is refused."""

    def __init__(self) -> None:
        events = open_storage("memory://").events
        assert events is not None
        self.inner = events

    async def append(self, events: Sequence[TaskEvent]) -> None:
        await self.inner.append(events)

    async def query(self, **kw):  # type: ignore[no-untyped-def]
        return await self.inner.query(**kw)

    async def purge(self, *, older_than: float | None = None, keep_last: int | None = None) -> int:
        raise BackendUnavailableError("purge refused")

    async def count(self) -> int:
        return await self.inner.count()


@pytest.fixture(params=["sqlite", "file", "postgres"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A store URL that a logger and a processor can each open on their own loop."""
    u = store_url(str(request.param), tmp_path)
    yield u

    async def cleanup() -> None:
        async with open_storage(u) as b:
            await drop(b)

    anyio.run(cleanup)


def count(url: str) -> int:
    async def go() -> int:
        async with open_storage(url) as b:
            assert b.events is not None
            return await b.events.count()

    return anyio.run(go)


def query(url: str) -> list[TaskEvent]:
    async def go() -> list[TaskEvent]:
        async with open_storage(url) as b:
            assert b.events is not None
            return await b.events.query()

    return anyio.run(go)


def test_disabled_sync_logger_starts_no_thread() -> None:
    before = threading.active_count()
    with EventLogger(None) as log:
        assert not log.enabled
        log.log(TaskEvent(task_id="t", type=EventType.ENQUEUED))
        log.enqueued("t")
        log.flush()
        assert log.purge() == 0
        assert threading.active_count() == before
    assert log.stats.logged == 0


def test_sync_logger_from_plain_threads(url: str) -> None:
    with EventLogger(url, batch_size=100) as log:
        assert log.enabled

        def produce(n: int) -> None:
            for i in range(500):
                log.executing(f"t{n}-{i}", f"w{n}", 1)

        threads = [threading.Thread(target=produce, args=(n,)) for n in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        log.flush()
        assert log.stats.written == 4000
    assert count(url) == 4000


def test_sync_exceptions_keep_type_and_traceback() -> None:
    log = EventLogger(PurgeFails(), retention_seconds=10)
    try:
        with pytest.raises(BackendUnavailableError, match="purge refused") as info:
            log.purge()
        frames = [f.name for f in traceback.extract_tb(info.value.__traceback__)]
        assert "purge" in frames  # the store's own frame survived the crossing
    finally:
        log.close()
    log.close()  # idempotent


@pytest.mark.anyio
async def test_sync_logger_async_context_manager_inside_a_loop(tmp_path: Path) -> None:
    url = store_url("sqlite", tmp_path)
    async with EventLogger(url) as log:
        log.complete("t1", "w", 1, 0.25)
    [e] = await anyio.to_thread.run_sync(query, url)
    assert e.type is EventType.COMPLETE and e.metadata == {"attempt": 1, "duration": 0.25}


def test_sync_processor_subscribe_query_replay_tail(url: str) -> None:
    got: list[TaskEvent] = []
    arrived = threading.Event()

    async def on_complete(e: TaskEvent) -> None:
        got.append(e)
        arrived.set()

    t0 = now()
    with (
        EventLogger(url, flush_interval=0.01) as log,
        EventProcessor(url, logger=log, poll_interval=0.01) as proc,
    ):
        proc.subscribe(on_complete, EventType.COMPLETE)
        log.enqueued("a")
        log.complete("a")
        assert arrived.wait(10)
        assert [e.task_id for e in got] == ["a"]
        log.flush()
        assert [e.type for e in proc.history("a")] == [EventType.ENQUEUED, EventType.COMPLETE]
        assert len(proc.query(types=[EventType.ENQUEUED])) == 1
        assert [e.type for e in proc.replay(t0 - 1)] == [EventType.ENQUEUED, EventType.COMPLETE]
        assert proc.replay_to_handlers(t0 - 1) == 2
        assert len(got) == 2

        tail = proc.tail(t0 - 1)
        first = next(tail)
        assert first.task_id == "a"
        log.cancelled("b", reason="user")
        log.flush()
        seen = [next(tail), next(tail)]
        assert [e.type for e in seen] == [EventType.COMPLETE, EventType.CANCELLED]
        tail.close()  # type: ignore[attr-defined]
    assert proc.handler_errors == 0
