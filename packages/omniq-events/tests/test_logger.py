"""AsyncEventLogger: non-blocking buffer, batching, failure handling, retention."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence

import anyio
import anyio.lowlevel
import pytest

from omniq.events import AsyncEventLogger, EventBuffer, enqueued_event
from omniq.models import BackendUnavailableError, EventType, Task, TaskEvent, now
from omniq.storage._interfaces import EventStorage

from .conftest import wait_until

pytestmark = pytest.mark.anyio


class FlakyStore(EventStorage):
    """A real store whose ``append`` raises for the first ``failures`` calls (-1: always)."""

    def __init__(self, inner: EventStorage, failures: int = -1) -> None:
        self.inner = inner
        self.failures = failures
        self.calls = 0

    async def append(self, events: Sequence[TaskEvent]) -> None:
        self.calls += 1
        if self.failures < 0 or self.calls <= self.failures:
            raise BackendUnavailableError("event store is down")
        await self.inner.append(events)

    async def query(self, **kw):  # type: ignore[no-untyped-def]
        return await self.inner.query(**kw)

    async def purge(self, *, older_than: float | None = None, keep_last: int | None = None) -> int:
        return await self.inner.purge(older_than=older_than, keep_last=keep_last)

    async def count(self) -> int:
        return await self.inner.count()


def ev(task_id: str = "t", type: EventType = EventType.ENQUEUED, **kw: object) -> TaskEvent:
    return TaskEvent(task_id=task_id, type=type, **kw)  # type: ignore[arg-type]


async def test_disabled_without_storage_is_a_noop() -> None:
    log = AsyncEventLogger(None)
    assert not log.enabled
    async with log:
        log.log(ev())
        log.log_many([ev(), ev()])
        log.enqueued(Task(func="m:f"))
        await log.flush()
        assert await log.purge() == 0
    s = log.stats
    assert (s.enabled, s.logged, s.buffered, s.written, s.dropped) == (False, 0, 0, 0, 0)


async def test_disabled_explicitly(store: EventStorage) -> None:
    async with AsyncEventLogger(store, enabled=False) as log:
        assert not log.enabled
        log.complete("t1")
        await log.flush()
    assert await store.count() == 0
    async with AsyncEventLogger(store) as log:
        log.disable()
        log.log(ev())
        log.enable()
        log.log(ev())
    assert await store.count() == 1


async def test_flush_and_close_drain_everything(store: EventStorage) -> None:
    log = AsyncEventLogger(store, batch_size=7, flush_interval=60)
    async with log:
        log.log_many(ev(f"t{i}") for i in range(20))
        await log.flush()
        assert await store.count() == 20
        for i in range(5):
            log.log(ev(f"u{i}"))
    # close drained the rest, then the logger turned into a no-op
    assert await store.count() == 25
    assert not log.enabled
    log.log(ev())
    assert log.stats.written == 25 and log.stats.logged == 25


async def test_size_trigger_wakes_the_writer_from_other_threads(store: EventStorage) -> None:
    async with AsyncEventLogger(store, batch_size=50, flush_interval=3600) as log:

        def produce() -> None:
            for i in range(50):
                log.log(ev(f"t{i}"))

        await anyio.to_thread.run_sync(produce)

        async def landed() -> bool:
            return await store.count() == 50

        await wait_until(landed, what="size-triggered flush")


async def test_interval_trigger(store: EventStorage) -> None:
    async with AsyncEventLogger(store, batch_size=1000, flush_interval=0.02) as log:
        log.log(ev())
        log.log(ev())

        async def landed() -> bool:
            return await store.count() == 2

        await wait_until(landed, what="interval flush")


class HungStore(FlakyStore):
    """A store whose ``append`` hangs until ``release`` is set, then raises (as always)."""

    def __init__(self, inner: EventStorage) -> None:
        super().__init__(inner)
        self.release = anyio.Event()
        self.entered = threading.Event()

    async def append(self, events: Sequence[TaskEvent]) -> None:
        self.entered.set()
        await self.release.wait()
        await super().append(events)


async def test_task_path_with_failing_store_completes_and_never_blocks(
    store: EventStorage, caplog: pytest.LogCaptureFixture
) -> None:
    """The store hangs, then every append raises: the simulated task path (in a thread,
    so a log() that waited for the store would stall it past the deadline) still runs
    to the end, and the loss is counted and reported."""
    failing = HungStore(store)
    caplog.set_level(logging.WARNING, logger="omniq.events")
    completed = 0
    async with AsyncEventLogger(
        failing, buffer_size=500, batch_size=50, flush_interval=0.01, retry_backoff=0.001
    ) as log:

        def task_path() -> None:
            nonlocal completed
            assert failing.entered.wait(10), "the writer never reached the store"
            for i in range(2000):
                task = Task(func="app:work", id=f"task-{i}")
                log.enqueued(task)
                log.executing(task, "w1", 1)
                log.complete(task, "w1", 1, duration=0.001)
                completed += 1

        log.enqueued(Task(func="app:work", id="first"))  # the writer takes it and hangs
        with anyio.fail_after(60):
            await anyio.to_thread.run_sync(task_path)
        failing.release.set()
        await log.flush()
        s = log.stats
    assert completed == 2000
    assert await store.count() == 0
    assert s.written == 0
    assert s.failed_flushes > 0 and s.write_errors >= s.failed_flushes
    assert s.dropped_full > 0  # the buffer filled while the store hung: dropped, not waited for
    assert s.dropped_failed + s.dropped_full == 6001
    assert s.logged == 6001 - s.dropped_full
    assert any("event store write failed" in r.getMessage() for r in caplog.records)


async def test_failed_batch_is_retried_with_backoff(store: EventStorage) -> None:
    flaky = FlakyStore(store, failures=2)
    async with AsyncEventLogger(flaky, flush_interval=3600, retry_backoff=0.001) as log:
        log.log_many(ev(f"t{i}") for i in range(10))
        await log.flush()
        s = log.stats
    assert await store.count() == 10
    assert (s.write_errors, s.failed_flushes, s.dropped) == (2, 0, 0)


async def test_dead_store_drains_quickly(store: EventStorage) -> None:
    """After one batch exhausted its retries, later batches get one probe each."""
    failing = FlakyStore(store)
    log = AsyncEventLogger(
        failing, batch_size=10, flush_interval=3600, max_retries=3, retry_backoff=0.001
    )
    log.log_many(ev(f"t{i}") for i in range(100))
    await log.flush()
    assert log.stats.failed_flushes == 10
    assert failing.calls == 4 + 9
    assert log.stats.dropped_failed == 100


@pytest.mark.parametrize("policy", ["newest", "oldest"])
async def test_full_buffer_drops_by_policy_and_reports(
    store: EventStorage, policy: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="omniq.events")
    log = AsyncEventLogger(store, buffer_size=5, drop_policy=policy)  # type: ignore[arg-type]
    for i in range(8):
        log.log(ev(f"t{i}"))
    assert log.stats.dropped_full == 3 and log.stats.buffered == 5
    await log.flush()
    kept = [e.task_id for e in await store.query()]
    expected = (
        ["t0", "t1", "t2", "t3", "t4"] if policy == "newest" else [f"t{i}" for i in range(3, 8)]
    )
    assert sorted(kept) == expected
    assert any("event buffer full" in r.getMessage() for r in caplog.records)


def test_buffer_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError):
        EventBuffer(0)
    with pytest.raises(ValueError):
        EventBuffer(10, "middle")  # type: ignore[arg-type]


async def test_concurrent_producers_lose_nothing(store: EventStorage) -> None:
    """Threads and tasks logging at once: every event accepted is written exactly once."""
    per = 2000
    async with AsyncEventLogger(store, buffer_size=100_000, batch_size=256) as log:

        def thread_producer(n: int) -> None:
            for i in range(per):
                log.log(ev(f"th{n}-{i}"))

        async def task_producer(n: int) -> None:
            for i in range(per):
                log.log(ev(f"tk{n}-{i}"))
                if i % 200 == 0:
                    await anyio.lowlevel.checkpoint()

        async with anyio.create_task_group() as tg:
            for n in range(4):
                tg.start_soon(anyio.to_thread.run_sync, thread_producer, n)
                tg.start_soon(task_producer, n)
        await log.flush()
        assert log.stats.written == 8 * per
    events = await store.query()
    assert len(events) == 8 * per == len({e.id for e in events})


async def test_retention_by_age_and_count(store: EventStorage) -> None:
    t = now()
    old = [ev(f"old{i}", timestamp=t - 1000 - i) for i in range(5)]
    new = [ev(f"new{i}", timestamp=t - i) for i in range(5)]
    await store.append(old + new)
    log = AsyncEventLogger(store, retention_seconds=100, retention_count=0)
    assert await log.purge() == 5
    assert {e.task_id for e in await store.query()} == {f"new{i}" for i in range(5)}
    log.retention_seconds, log.retention_count = 0, 2
    assert await log.purge() == 3
    assert [e.task_id for e in await store.query()] == ["new1", "new0"]
    log.retention_count = 0
    assert await log.purge() == 0  # no limit configured: nothing to do
    assert await log.purge(keep_last=0) == 2
    assert log.stats.purged == 10


async def test_retention_applied_periodically(store: EventStorage) -> None:
    t = now()
    await store.append([ev(f"old{i}", timestamp=t - 500) for i in range(3)])
    async with AsyncEventLogger(
        store, retention_seconds=60, retention_interval=0.01, flush_interval=0.01
    ) as log:
        log.log(ev("fresh"))

        async def applied() -> bool:
            return [e.task_id for e in await store.query()] == ["fresh"]

        await wait_until(applied, what="periodic retention")
        assert log.stats.purged == 3


async def test_listeners_see_stored_batches(store: EventStorage) -> None:
    seen: list[str] = []
    log = AsyncEventLogger(store)
    log.add_listener(lambda batch: seen.extend(e.task_id for e in batch))
    log.add_listener(lambda batch: 1 / 0)  # a broken listener does not stop the others
    log.log(ev("a"))
    await log.flush()
    assert seen == ["a"]


async def test_enqueued_event_metadata() -> None:
    task = Task(func="app:f", priority=5, depends_on=("x",), queue="q")
    e = enqueued_event(task, source="api")
    assert (e.task_id, e.type, e.queue) == (task.id, EventType.ENQUEUED, "q")
    assert e.metadata == {"func": "app:f", "priority": 5, "depends_on": ["x"], "source": "api"}


async def test_threads_can_log_while_the_loop_is_busy_elsewhere(store: EventStorage) -> None:
    done = threading.Event()
    async with AsyncEventLogger(store) as log:

        def worker() -> None:
            log.retry("t", ValueError("boom"), eta=now() + 5, attempt=1, delay=5.0)
            done.set()

        threading.Thread(target=worker).start()
        await anyio.to_thread.run_sync(done.wait)
        await log.flush()
    [e] = await store.query()
    assert e.metadata["error_type"] == "ValueError" and e.metadata["delay"] == 5.0


@pytest.mark.slow
async def test_100k_events_from_8_producers_all_land_in_sqlite(
    sqlite_store: EventStorage,
) -> None:
    """4 threads and 4 tasks log 12,500 events each; after flush() SQLite holds all
    100,000, each once. The buffer is sized for the burst (drops are the designed
    response to a store that cannot keep up, and are tested separately)."""
    per, producers = 12_500, 8
    async with AsyncEventLogger(sqlite_store, buffer_size=100_000, batch_size=1000) as log:

        def thread_producer(n: int) -> None:
            for i in range(per):
                log.log(ev(f"th{n}-{i}", EventType.EXECUTING, worker_id=f"w{n}"))

        async def task_producer(n: int) -> None:
            for i in range(per):
                log.log(ev(f"tk{n}-{i}", EventType.COMPLETE))
                if i % 500 == 0:
                    await anyio.lowlevel.checkpoint()

        async with anyio.create_task_group() as tg:
            for n in range(producers // 2):
                tg.start_soon(anyio.to_thread.run_sync, thread_producer, n)
                tg.start_soon(task_producer, n)
        await log.flush()
        s = log.stats
    assert s.dropped == 0 and s.written == per * producers
    assert await sqlite_store.count() == per * producers
    events = await sqlite_store.query()
    assert len({e.id for e in events}) == per * producers
    assert len({e.task_id for e in events}) == per * producers
