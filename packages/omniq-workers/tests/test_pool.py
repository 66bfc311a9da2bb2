"""AsyncWorkerPool against every worker type: results, errors, timeouts, TTL, bounds,
shutdown, lease loss, batching. Uses the in-memory source and sink of the testkit."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from typing import Any

import pytest
from omniq_workers_testkit import (
    AGATES,
    GATES,
    RUNS,
    MemorySink,
    MemorySource,
    agate,
    gate,
    make_task,
    max_overlap,
    omniq_children,
    value_of,
)

from omniq.models import Task, TaskStatus, WorkerType
from omniq.workers import AsyncWorkerPool

pytestmark = pytest.mark.anyio

TYPES = ["async", "thread", "process", "gevent"]

# Per type: (sync-or-native function names) used by the parametrized tests.
ADD = {"async": "aadd", "thread": "add", "process": "add", "gevent": "add"}
BOOM = {"async": "aboom", "thread": "boom", "process": "boom", "gevent": "boom"}
SLEEP = {
    "async": "asleep_for",
    "thread": "sleep_for",
    "process": "sleep_for",
    "gevent": "gsleep_for",
}
INTERVAL = {
    "async": "ainterval",
    "thread": "interval",
    "process": "interval",
    "gevent": "ginterval",
}
HOLD = {"async": "ahold", "thread": "hold", "process": "fhold", "gevent": "ghold"}


def omniq_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("omniq")]


@pytest.fixture(autouse=True)
def nothing_left_behind() -> Any:
    """Every test must end with no worker thread, hub thread or child process alive."""
    GATES.clear()
    AGATES.clear()
    RUNS.clear()
    yield
    assert omniq_threads() == []
    assert omniq_children() == []


def pool_for(src: MemorySource, sink: MemorySink, **opts: Any) -> AsyncWorkerPool:
    opts.setdefault("max_workers", 8)
    opts.setdefault("thread_workers", 4)
    opts.setdefault("process_workers", 2)
    opts.setdefault("gevent_workers", 8)
    opts.setdefault("renew_interval", 10.0)
    opts.setdefault("default_timeout", 0)
    return AsyncWorkerPool(src, sink, **opts)


async def run_burst(
    tasks: list[Task], **opts: Any
) -> tuple[MemorySource, MemorySink, AsyncWorkerPool]:
    src, sink = MemorySource(tasks), MemorySink()
    pool = pool_for(src, sink, **opts)
    await pool.run(burst=True)
    return src, sink, pool


def assert_each_once(src: MemorySource, sink: MemorySink) -> None:
    """Every claim ended exactly once: reported or released, never both, never twice."""
    reported = Counter(o.task_id for o in sink.outcomes)
    released = Counter(c.task.id for c in src.released)
    claimed = Counter(c.task.id for c in src.claimed)
    assert all(n == 1 for n in reported.values()), reported
    assert all(n == 1 for n in released.values()), released
    assert not set(reported) & set(released)
    assert set(reported) | set(released) == set(claimed)


@pytest.mark.parametrize("wt", TYPES)
async def test_success_sync_and_async_functions(wt: str) -> None:
    tasks = [make_task(ADD[wt], i, 1, worker=wt) for i in range(10)]
    # The other flavour too: async functions on thread/process/gevent, sync on async.
    other = "add" if wt == "async" else "aadd"
    tasks += [make_task(other, 100, i, worker=wt) for i in range(3)]
    _src, sink, pool = await run_burst(tasks)
    assert len(sink.outcomes) == 13
    assert all(o.status is TaskStatus.SUCCESS for o in sink.outcomes)
    values = sorted(value_of(o) for o in sink.outcomes)
    assert values == [*range(1, 11), 100, 101, 102]
    o = sink.outcomes[0]
    assert o.worker_type is WorkerType(wt)
    assert o.started_at is not None and o.finished_at >= o.started_at and o.duration >= 0
    assert o.worker_id == pool.worker_id
    assert {c.task.id for c in sink.started_claims} == {t.id for t in tasks}
    assert pool.stats.succeeded == 13 and pool.stats.started == 13


@pytest.mark.parametrize("wt", TYPES)
async def test_exception_keeps_type_and_traceback(wt: str) -> None:
    tasks = [make_task(BOOM[wt], "kaboom", worker=wt), make_task(ADD[wt], 1, 2, worker=wt)]
    _src, sink, _ = await run_burst(tasks)
    by = sink.by_id()
    bad = by[tasks[0].id]
    assert bad.status is TaskStatus.ERROR
    assert bad.error is not None
    assert bad.error.type == "omniq_workers_testkit.Boom"
    assert bad.error.message == "kaboom"
    assert bad.error.traceback is not None
    assert "raise Boom(msg)" in bad.error.traceback
    assert "Boom: kaboom" in bad.error.traceback
    assert not bad.timed_out and not bad.crashed
    assert by[tasks[1].id].ok


@pytest.mark.parametrize("wt", TYPES)
async def test_timeout(wt: str) -> None:
    if wt == "thread":  # a thread cannot be killed: block on a gate we open afterwards
        slow = make_task("hold", "t", "slow", worker=wt, timeout=0.3)
    else:
        slow = make_task(SLEEP[wt], 30, worker=wt, timeout=0.3)
    after = make_task(ADD[wt], 2, 2, worker=wt)
    src, sink = MemorySource([slow]), MemorySink()
    pool = pool_for(src, sink)
    t0 = time.monotonic()
    async with pool:
        await sink.wait_for(1)
        elapsed = time.monotonic() - t0
        src.add([after])
        await sink.wait_for(2)
        if wt == "thread":
            # The thread cannot be killed: its slot stays taken while it sleeps on.
            assert pool.worker("thread").running == 1  # type: ignore[union-attr]
            gate("t").set()
    o = sink.by_id()[slow.id]
    assert o.status is TaskStatus.ERROR and o.timed_out
    assert o.error is not None and o.error.type == "omniq.models.TaskTimeoutError"
    assert elapsed < 10
    assert sink.by_id()[after.id].ok and value_of(sink.by_id()[after.id]) == 4
    assert pool.stats.timed_out == 1


@pytest.mark.parametrize("wt", TYPES)
async def test_ttl_expired_before_start_is_not_run(wt: str) -> None:
    expired = make_task(HOLD[wt], "never", "expired", worker=wt, expires_at=time.time() - 1)
    fine = make_task(ADD[wt], 1, 1, worker=wt, expires_at=time.time() + 3600)
    _src, sink, pool = await run_burst([expired, fine])
    o = sink.by_id()[expired.id]
    assert o.status is TaskStatus.EXPIRED
    assert o.started_at is None and o.value is None
    assert o.error is not None and o.error.type == "omniq.models.TaskExpiredError"
    assert "expired" not in RUNS
    assert expired.id not in {c.task.id for c in sink.started_claims}
    assert sink.by_id()[fine.id].ok
    assert pool.stats.expired == 1


async def test_ttl_that_passes_while_waiting_for_a_slot() -> None:
    blocker = make_task("hold", "g", "blocker", worker="thread")
    ttl = time.time() + 0.3
    waiting = make_task("hold", "g", "late", worker="thread", expires_at=ttl)
    src, sink = MemorySource([blocker, waiting]), MemorySink()
    async with pool_for(src, sink, thread_workers=1):
        await sink.wait_started(1)
        # Let the TTL pass while the task waits for the only thread: wall-clock time is
        # the condition under test here, not a stand-in for synchronization.
        await asyncio.sleep(max(0.0, ttl - time.time()) + 0.05)
        gate("g").set()
        await sink.wait_for(2)
    assert sink.by_id()[waiting.id].status is TaskStatus.EXPIRED
    assert RUNS == {"blocker": 1}


@pytest.mark.slow
@pytest.mark.parametrize("wt", TYPES)
async def test_thousand_tasks_respect_concurrency_bounds(wt: str) -> None:
    work = 0.0 if wt == "process" else 0.002
    tasks = [make_task(INTERVAL[wt], work, worker=wt) for _ in range(1000)]
    caps = {"async": 16, "thread": 4, "process": 2, "gevent": 8}
    src, sink, _pool = await run_burst(
        tasks, max_workers=16, thread_workers=4, process_workers=2, gevent_workers=8
    )
    assert len(sink.outcomes) == 1000
    assert all(o.ok for o in sink.outcomes)
    assert len({o.task_id for o in sink.outcomes}) == 1000
    overlap = max_overlap(tuple(value_of(o)) for o in sink.outcomes)
    assert 1 <= overlap <= caps[wt]
    if wt in ("async", "gevent"):
        assert overlap > 1  # they really ran concurrently
    assert src.max_limit <= 16  # never claimed more than free slots
    assert len(sink.batches) < 1000  # outcomes were delivered in batches


async def test_mixed_types_share_the_overall_bound() -> None:
    tasks = []
    for i in range(200):
        wt = TYPES[i % 4]
        tasks.append(make_task(INTERVAL[wt], 0.002, worker=wt))
    src, sink, _pool = await run_burst(
        tasks, max_workers=6, thread_workers=4, process_workers=2, gevent_workers=4
    )
    assert len(sink.outcomes) == 200 and all(o.ok for o in sink.outcomes)
    assert max_overlap(tuple(value_of(o)) for o in sink.outcomes) <= 6
    assert src.max_limit <= 6
    per_type = Counter(o.worker_type for o in sink.outcomes)
    assert per_type == {WorkerType(t): 50 for t in TYPES}


def hold_task(wt: str, key: str, gate_name: str, tmp: Any) -> Task:
    if wt == "process":
        return make_task("fhold", str(tmp / gate_name), key, worker=wt)
    return make_task(HOLD[wt], gate_name, key, worker=wt)


def open_gate(wt: str, name: str, tmp: Any) -> None:
    if wt == "process":
        (tmp / name).write_text("open")
    elif wt == "async":
        agate(name).set()
    else:
        gate(name).set()


@pytest.mark.parametrize("wt", TYPES)
async def test_graceful_shutdown_finishes_running_and_releases_queued(
    wt: str, tmp_path: Any
) -> None:
    tasks = [hold_task(wt, f"k{i}", "g", tmp_path) for i in range(6)]
    src, sink = MemorySource(tasks), MemorySink()
    caps = dict(max_workers=4, thread_workers=2, process_workers=2, gevent_workers=2)
    if wt == "async":
        caps["max_workers"] = 2
    pool = pool_for(src, sink, shutdown_grace=30, **caps)
    async with pool:
        await sink.wait_started(2)
        pool.request_stop()
        open_gate(wt, "g", tmp_path)  # running tasks finish within the grace period
    assert_each_once(src, sink)
    assert len(sink.outcomes) == 2 and all(o.ok for o in sink.outcomes)
    assert len(src.released) == len(src.claimed) - 2
    assert len(src.pending) + len(src.claimed) == 6  # unclaimed tasks stay in the source
    if wt != "process":
        assert all(n == 1 for n in RUNS.values()) and len(RUNS) == 2


@pytest.mark.parametrize("wt", TYPES)
async def test_shutdown_after_grace_hands_running_tasks_back(wt: str, tmp_path: Any) -> None:
    tasks = [hold_task(wt, f"k{i}", "g", tmp_path) for i in range(6)]
    src, sink = MemorySource(tasks), MemorySink()
    # Stuck threads and greenlets are let go once their tasks are handed back.
    orig_release = src.release

    async def release(claims: Any) -> None:
        await orig_release(claims)
        if len(src.released) >= len(src.claimed):
            open_gate(wt, "g", tmp_path)

    src.release = release  # type: ignore[method-assign]
    pool = pool_for(
        src,
        sink,
        shutdown_grace=0.2,
        max_workers=4,
        thread_workers=2,
        process_workers=2,
        gevent_workers=2,
    )
    async with pool:
        await sink.wait_started(2)
    assert_each_once(src, sink)
    assert sink.outcomes == []
    assert len(src.released) == len(src.claimed) == 4
    assert pool.stats.released == 4
    if wt != "process":
        assert all(n == 1 for n in RUNS.values())


@pytest.mark.parametrize("wt", ["async", "gevent", "process"])
async def test_forced_stop_does_not_wait_for_the_grace(wt: str, tmp_path: Any) -> None:
    tasks = [hold_task(wt, f"k{i}", "g", tmp_path) for i in range(3)]
    src, sink = MemorySource(tasks), MemorySink()
    pool = pool_for(src, sink, shutdown_grace=60)
    t0 = time.monotonic()
    async with pool:
        await sink.wait_started(2)  # process_workers=2: the third waits for a slot
        pool.request_stop()
        pool.request_stop(force=True)  # a second signal
    assert time.monotonic() - t0 < 30
    assert_each_once(src, sink)
    assert len(src.released) == 3


async def test_lost_lease_is_not_reported_nor_released() -> None:
    keep = make_task("ahold", "g", "keep", worker="async")
    lose = make_task("ahold", "g", "lose", worker="async")
    src, sink = MemorySource([keep, lose]), MemorySink()
    src.lost.add(lose.id)
    pool = pool_for(src, sink, renew_interval=0.05)
    async with pool:
        await sink.wait_started(2)
        async with asyncio.timeout(10):
            while pool.stats.leases_lost == 0:
                src.renew_seen.clear()
                await src.renew_seen.wait()
        assert [[keep.id, lose.id]] == src.renewed[:1] or keep.id in src.renewed[0]
        agate("g").set()
        await sink.wait_for(1)
    assert [o.task_id for o in sink.outcomes] == [keep.id]
    assert src.released == []
    assert pool.stats.leases_lost == 1


async def test_renews_leases_of_running_tasks() -> None:
    t = make_task("ahold", "g", "x", worker="async")
    src, sink = MemorySource([t]), MemorySink()
    async with pool_for(src, sink, renew_interval=0.05):
        await sink.wait_started(1)
        async with asyncio.timeout(10):
            while len(src.renewed) < 2:
                src.renew_seen.clear()
                await src.renew_seen.wait()
        agate("g").set()
        await sink.wait_for(1)
    assert all(ids == [t.id] for ids in src.renewed)


async def test_routing_hint_coroutine_and_default() -> None:
    tasks = [
        make_task("aadd", 1, 1),  # coroutine function -> async
        make_task("add", 1, 1),  # plain function -> default (thread)
        make_task("add", 1, 1, worker="process"),  # hint wins
    ]
    _src, sink, _ = await run_burst(tasks)
    types = {o.task_id: o.worker_type for o in sink.outcomes}
    assert types == {
        tasks[0].id: WorkerType.ASYNC,
        tasks[1].id: WorkerType.THREAD,
        tasks[2].id: WorkerType.PROCESS,
    }


async def test_bad_function_path_is_an_error_outcome() -> None:
    tasks = [make_task("omniq_workers_testkit:does_not_exist"), make_task("no_such_module_x:f")]
    _src, sink, _ = await run_burst(tasks)
    assert [o.status for o in sink.outcomes] == [TaskStatus.ERROR, TaskStatus.ERROR]
    assert all(o.error is not None and o.error.type for o in sink.outcomes)


async def test_waits_for_work_instead_of_polling() -> None:
    src, sink = MemorySource(), MemorySink()
    pool = pool_for(src, sink, idle_wait=30)
    async with pool:
        await asyncio.sleep(0)
        claims_before = len(src.claimed)
        src.add([make_task("aadd", 2, 3)])
        await sink.wait_for(1)
    assert value_of(sink.outcomes[0]) == 5
    assert claims_before == 0


async def test_sink_and_source_failures_do_not_kill_the_pool() -> None:
    class FlakySink(MemorySink):
        fails = 1

        async def report(self, outcomes: Any) -> None:
            if self.fails:
                self.fails -= 1
                raise OSError("sink down")
            await super().report(outcomes)

    src, sink = MemorySource([make_task("aadd", 1, 1)]), FlakySink()
    pool = pool_for(src, sink)
    await pool.run(burst=True)
    assert len(sink.outcomes) == 1 and pool.stats.sink_errors == 1


async def test_no_claims_while_claimed_tasks_wait_for_a_busy_pool() -> None:
    """A large max_workers (the async capacity) does not make the pool hoard blocking
    tasks: while a claimed task waits for a thread, the pool claims no more."""
    tasks = [make_task("hold", "g", f"t{i}", worker="thread") for i in range(10)]
    src, sink = MemorySource(tasks), MemorySink()
    async with pool_for(src, sink, max_workers=100, thread_workers=1, claim_batch=2):
        await sink.wait_started(1)
        # A window in which the pool could claim more: claiming not happening is the
        # condition under test, so wall-clock time stands in for nothing here.
        await asyncio.sleep(0.2)
        assert len(src.claimed) == 2
        gate("g").set()
        await sink.wait_for(10)
    assert_each_once(src, sink)
    assert len(RUNS) == 10


class ReleasingSink(MemorySink):
    """Reporting the first task's outcome makes a second task claimable, as a store
    releasing a dependent does."""

    def __init__(self, src: MemorySource, then: Task) -> None:
        super().__init__()
        self.src = src
        self.then: Task | None = then

    async def report(self, outcomes: Any) -> None:
        await super().report(outcomes)
        if self.then is not None and any(o.task_id != self.then.id for o in outcomes):
            self.src.add([self.then])
            self.then = None


async def test_burst_stores_buffered_outcomes_before_deciding_it_is_done() -> None:
    first, dependent = make_task("add", 1, 1), make_task("add", 2, 2)
    src = MemorySource([first])
    sink = ReleasingSink(src, dependent)
    # A long flush interval keeps the first outcome buffered after its slot frees.
    pool = pool_for(src, sink, flush_interval=0.5, report_batch=100)
    await pool.run(burst=True)
    assert sorted(value_of(o) for o in sink.outcomes) == [2, 4]
