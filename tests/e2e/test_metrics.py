"""Prometheus metrics of workers, scraped over HTTP as Prometheus would.

In one process (``oq.worker(metrics_port=...)``) and under a supervisor
(``processes=2``): counters by queue and function, the run-time histogram, running
tasks, and the store gauges. Each test uses its own queue name, since a process keeps
one set of metrics for all its workers.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import threading
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import anyio
import obs_tasks as ot
import pytest
import supervisor_tasks as st
from prometheus_client.parser import text_string_to_metric_families

from omniq.core import OmniQ, _metrics, metrics_registry
from omniq.core._supervisor import supervisor_for
from omniq.models import ClaimedTask, ConfigError, Task, TaskStatus, now
from omniq.storage.testing.helpers import poll_until
from omniq.workers import Outcome, PoolStats

from .conftest import BACKENDS

WAIT = 60.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the endpoint: (name, sorted labels) -> value."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def try_scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """``scrape``, or nothing while the endpoint is not up yet."""
    try:
        return scrape(port)
    except OSError:
        return {}


def value(
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def wait_for(cond: Callable[[], object], what: str, timeout: float = WAIT) -> None:
    deadline = now() + timeout
    while not cond():
        assert now() < deadline, f"timed out waiting for {what}"
        threading.Event().wait(0.05)  # poll interval, not synchronization


def fn(f: Callable[..., object]) -> str:
    return f"{f.__module__}:{f.__qualname__}"


@pytest.mark.anyio
async def test_worker_serves_task_counters_and_store_gauges(
    make_oq: Callable[..., OmniQ],
) -> None:
    q, idle = f"m{uuid.uuid4().hex[:8]}", f"i{uuid.uuid4().hex[:8]}"
    port = free_port()
    async with make_oq() as oq:
        await oq.enqueue_many([(ot.ok, (i,)) for i in range(5)], queue=q)
        await oq.enqueue_many([(ot.fail, (i,)) for i in range(2)], queue=q, max_retries=1)
        await oq.enqueue_many([(ot.ok, (i,)) for i in range(3)], queue=idle)  # nobody serves it
        async with oq.worker(queues=[q], metrics_port=port, metrics_interval=0.1):

            async def finished() -> int:
                return sum(
                    n
                    for (qn, st_), n in (await oq.counts()).items()
                    if qn == q and st_ in (TaskStatus.SUCCESS, TaskStatus.ERROR)
                )

            await poll_until(finished, lambda n: n == 7, deadline=WAIT)

            def settled() -> bool:
                s = scrape(port)
                return (
                    value(s, "omniq_tasks_failed_total", queue=q, function=fn(ot.fail)) == 2
                    and value(s, "omniq_queue_tasks", queue=q, status="success") == 5
                    and value(s, "omniq_queue_tasks", queue=q, status="error") == 2
                    and value(s, "omniq_queue_tasks", queue=idle, status="pending") == 3
                )

            await anyio.to_thread.run_sync(lambda: wait_for(settled, "the counters"))
            s = await anyio.to_thread.run_sync(scrape, port)
    ok_l = {"queue": q, "function": fn(ot.ok)}
    fail_l = {"queue": q, "function": fn(ot.fail)}
    assert value(s, "omniq_tasks_started_total", **ok_l) == 5
    assert value(s, "omniq_tasks_succeeded_total", **ok_l) == 5
    assert value(s, "omniq_tasks_failed_total", **ok_l) == 0
    assert value(s, "omniq_tasks_started_total", **fail_l) == 4  # two tasks, two attempts each
    assert value(s, "omniq_tasks_retried_total", **fail_l) == 2
    assert value(s, "omniq_tasks_failed_total", **fail_l) == 2
    assert value(s, "omniq_task_duration_seconds_count", **ok_l) == 5
    assert value(s, "omniq_task_duration_seconds_count", **fail_l) == 4
    assert value(s, "omniq_task_duration_seconds_bucket", le="+Inf", **ok_l) == 5
    assert value(s, "omniq_tasks_running", queue=q) == 0
    assert value(s, "omniq_queue_tasks", queue=q, status="error") == 2
    assert value(s, "omniq_queue_tasks", queue=idle, status="pending") == 3
    assert value(s, "omniq_queue_oldest_pending_seconds", queue=idle) > 0
    assert value(s, "omniq_queue_oldest_pending_seconds", queue=q) == 0
    assert value(s, "omniq_workers_live") >= 1
    # the endpoint is gone with the worker; the registry stays for the process
    with pytest.raises(OSError):
        scrape(port)
    assert metrics_registry() is metrics_registry()


@pytest.mark.anyio
async def test_metrics_without_a_port_record_into_the_registry(
    make_oq: Callable[..., OmniQ],
) -> None:
    from prometheus_client import generate_latest

    q = f"m{uuid.uuid4().hex[:8]}"
    async with make_oq() as oq:
        await oq.enqueue_many([(ot.ok, (i,)) for i in range(3)], queue=q)
        await oq.run_worker(queues=[q], burst=True, metrics=True)
    text = generate_latest(metrics_registry()).decode()
    assert f'omniq_tasks_succeeded_total{{function="{fn(ot.ok)}",queue="{q}"}} 3.0' in text


@pytest.mark.anyio
async def test_the_run_time_histogram_puts_each_run_in_its_bucket(
    make_oq: Callable[..., OmniQ],
) -> None:
    q = f"m{uuid.uuid4().hex[:8]}"
    async with make_oq() as oq:
        await oq.enqueue_many([(ot.pause, (0.03,)) for _ in range(3)], queue=q)
        await oq.enqueue_many([(ot.ok, (i,)) for i in range(4)], queue=q)
        await oq.run_worker(queues=[q], burst=True, metrics=True)
    registry = metrics_registry()

    def sample(suffix: str, function: str, **labels: str) -> float | None:
        return registry.get_sample_value(  # type: ignore[no-any-return]
            f"omniq_task_duration_seconds{suffix}", {"queue": q, "function": function, **labels}
        )

    slow, quick = fn(ot.pause), fn(ot.ok)
    assert sample("_count", slow) == 3
    assert sample("_bucket", slow, le="0.025") == 0  # each ran 0.03 s or more
    assert sample("_bucket", slow, le="+Inf") == 3
    assert (sample("_sum", slow) or 0) >= 0.09
    assert sample("_count", quick) == 4
    assert sample("_bucket", quick, le="+Inf") == 4
    buckets = [
        sample("_bucket", quick, le=le)
        for le in ("0.001", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1.0")
    ]
    assert buckets == sorted(buckets)  # cumulative


@pytest.mark.anyio
async def test_a_taken_port_is_a_config_error(make_oq: Callable[..., OmniQ]) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        async with make_oq() as oq:
            with pytest.raises(ConfigError, match="metrics_port"):
                await oq.run_worker(burst=True, metrics_port=port)


def started_pids(folder: Path) -> set[int]:
    return {int(p.name.rsplit("-", 1)[1]) for p in folder.glob("started-*")}


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", "redis"])
def test_supervised_children_add_up_once_across_a_restart(backend: str, tmp_path: Path) -> None:
    spec = BACKENDS[backend]
    url = spec.url(tmp_path)
    folder = tmp_path / "gate"
    folder.mkdir()
    port = free_port()
    gate = fn(st.gate)
    try:
        with OmniQ(url, lease_seconds=1.0) as oq:
            oq.enqueue_many_sync([(st.gate, (i, str(folder))) for i in range(12)], max_retries=3)
            sup = supervisor_for(oq, {"concurrency": 2, "metrics_port": port}, 2, burst=False)
            result: list[PoolStats] = []
            runner = threading.Thread(target=lambda: result.append(sup.run(handle_signals=False)))
            runner.start()
            try:
                labels = {"queue": "default", "function": gate}
                # both children hold two running tasks each, counted as one set
                wait_for(
                    lambda: value(try_scrape(port), "omniq_tasks_running", queue="default") == 4,
                    "four running tasks",
                )
                assert value(scrape(port), "omniq_tasks_started_total", **labels) == 4
                victim = min(started_pids(folder))
                os.kill(victim, signal.SIGKILL)
                wait_for(lambda: sup.restarts == 1, "the killed child to be restarted")
                (folder / "go").touch()
                wait_for(
                    lambda: oq.counts_sync() == {("default", TaskStatus.SUCCESS): 12},
                    "every task to succeed",
                )

                def settled() -> bool:
                    s = scrape(port)
                    return (
                        value(s, "omniq_tasks_succeeded_total", **labels) == 12
                        and value(s, "omniq_tasks_running", queue="default") == 0
                        and value(s, "omniq_queue_tasks", queue="default", status="success") == 12
                        and value(s, "omniq_workers_live") >= 2
                    )

                wait_for(settled, "the counters to settle")
                s = scrape(port)
                runs = len(list(folder.glob("started-*")))  # one file per run, killed ones too
                assert runs >= 14  # 12, plus the two the kill cut short (a lapsed lease adds one)
                assert value(s, "omniq_tasks_started_total", **labels) == runs
                assert value(s, "omniq_tasks_succeeded_total", **labels) == 12
                assert value(s, "omniq_tasks_failed_total", **labels) == 0
                assert value(s, "omniq_task_duration_seconds_count", **labels) == 12
                metrics_dir = sup.metrics.path if sup.metrics is not None else ""
                assert os.path.isdir(metrics_dir)
            finally:
                sup.request_stop()
                runner.join(WAIT)
            assert not runner.is_alive() and result
            assert not os.path.exists(metrics_dir)  # the supervisor removed its directory
            with pytest.raises(OSError):
                scrape(port)
    finally:
        if spec.cleanup is not None:
            spec.cleanup(url)


def test_the_observer_counts_each_batch_as_its_tasks_say() -> None:
    """Batches of one queue and function (counted without a loop per task) and mixed
    batches (statuses, retries, runs that never started, repeated starts) end in the
    counts a plain tally of the same outcomes gives."""
    m = _metrics._Metrics()
    observer = _metrics._Observer(m)
    rnd = random.Random(5)
    want: Counter[tuple[str, str, str]] = Counter()
    timed: Counter[tuple[str, str]] = Counter()
    running: Counter[str] = Counter()
    live: dict[str, str] = {}
    statuses = [TaskStatus.SUCCESS, TaskStatus.ERROR, TaskStatus.EXPIRED, TaskStatus.CANCELLED]
    for n in range(200):
        one = n % 2 == 0  # every other batch: one queue and function, all run and succeeded
        claims = [
            ClaimedTask(
                task=Task(
                    func="f" if one else rnd.choice("fg"), queue="a" if one else rnd.choice("ab")
                ),
                token="t",
                lease_expires_at=0.0,
                worker_id="w",
            )
            for _ in range(rnd.randint(1, 20))
        ]
        for starts in (claims, claims[:1]):  # the second: a repeated start
            observer.started(starts)
            for c in starts:
                want[c.task.queue, c.task.func, "started"] += 1
                if c.task.id not in live:
                    live[c.task.id] = c.task.queue
                    running[c.task.queue] += 1
        outcomes, retried = [], set()
        for c in claims:
            status = TaskStatus.SUCCESS if one else rnd.choice(statuses)
            started = one or rnd.random() < 0.9
            if status is TaskStatus.ERROR and rnd.random() < 0.5:
                retried.add(c.task.id)
            outcomes.append(
                Outcome(
                    claimed=c,
                    status=status,
                    started_at=1.0 if started else None,
                    duration=rnd.random(),
                )
            )
            key = (c.task.queue, c.task.func)
            if status is TaskStatus.SUCCESS:
                want[(*key, "succeeded")] += 1
            elif c.task.id in retried:
                want[(*key, "retried")] += 1
            elif status is TaskStatus.ERROR:
                want[(*key, "failed")] += 1
            if started and status is not TaskStatus.EXPIRED:
                timed[key] += 1
            queue = live.pop(c.task.id, None)
            if queue is not None:
                running[queue] -= 1
        observer.reported(outcomes, retried)
    got = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in m.registry.collect()
        for s in family.samples
    }
    for (queue, func, what), count in want.items():
        assert got[f"omniq_tasks_{what}_total", (("function", func), ("queue", queue))] == count
    for (queue, func), count in timed.items():
        key = (("function", func), ("queue", queue))
        assert got["omniq_task_duration_seconds_count", key] == count
    for queue, count in running.items():
        assert got["omniq_tasks_running", (("queue", queue),)] == count
