"""A three-node NATS JetStream cluster (R3 streams and buckets) under worker processes:
one node is SIGKILLed mid-run and restarted.

Every task must end successful with one success result and one accepted completion;
a task may run more than once only when an earlier run overlapped the node's outage
(its worker's connection or its stream leader died) or was in a killed worker.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path
from typing import Any

import anyio
import chaos_tasks as ct
import nats.js.errors
import pytest
from _nodes import NatsCluster
from chaos_fleet import Fleet, audit, read_ledger, record

from omniq.core import OmniQ
from omniq.models import BackendUnavailableError, StorageError, Task, TaskResult, TaskStatus, now
from omniq.storage import Backend, Completion, open_storage

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

# Tasks in the run (OMNIQ_CLUSTER_TASKS sets another size; R3 JetStream throughput on a
# 2-core machine is in docs/scaling.md).
N = int(os.environ.get("OMNIQ_CLUSTER_TASKS", "5000"))
LEASE = 3.0


async def _ready(url: str, deadline: float = 60.0) -> None:
    """Wait for the cluster to elect its JetStream meta leader and create our streams."""
    end = time.monotonic() + deadline
    while True:
        try:
            async with open_storage(url):
                return
        except (BackendUnavailableError, StorageError):
            if time.monotonic() > end:
                raise
            await anyio.sleep(0.2)


async def _enqueue(url: str, events: str, tasks: list[Task], deadline: float = 60.0) -> None:
    """Enqueue ``tasks`` (by id: a repeated enqueue adds nothing), again while the new
    cluster still refuses requests (a meta leader elected after ``_ready`` passed)."""
    end = time.monotonic() + deadline
    while True:
        try:
            async with OmniQ(url, url, events, lease_seconds=LEASE) as oq:
                for i in range(0, N, 1000):
                    await oq.enqueue_many(tasks[i : i + 1000])
            return
        except (BackendUnavailableError, StorageError):
            if time.monotonic() > end:
                raise
            await anyio.sleep(0.2)


async def _done(backend: Backend) -> int | None:
    try:
        assert backend.tasks is not None
        return await backend.tasks.count(status=TaskStatus.SUCCESS)
    except (BackendUnavailableError, StorageError):
        return None


async def test_nats_cluster_node_killed_mid_run(tmp_path: Path) -> None:
    ns = "OQCLUSTER"
    cluster = NatsCluster(base=14222).start()
    fleet: Fleet | None = None
    try:
        url = cluster.url(namespace=ns, replicas=3)
        await _ready(url)
        events = f"sqlite:///{tmp_path / 'events.db'}"
        ledger = tmp_path / "ledger"
        tags = [f"t{i}" for i in range(N)]
        builder = OmniQ(url, url, events, lease_seconds=LEASE)  # builds tasks, never opened
        tasks = [builder.build(ct.awork, (str(ledger), t, 0.005), max_retries=20) for t in tags]
        await _enqueue(url, events, tasks)
        cfg = {"url": url, "events": events, "lease": LEASE, "concurrency": 16}
        fleet = Fleet(cfg, tmp_path, size=3).start()
        watcher = await open_storage(url).__aenter__()
        t0 = time.monotonic()
        progress: list[str] = []
        victim = cluster.nodes[0]
        killed_at = back_at = 0
        done = 0
        started = 0
        next_count = 0.0
        while done < N:
            assert time.monotonic() - t0 < max(170, N / 12), (
                f"not drained: {progress}\n{fleet.logs()}"
            )
            assert not fleet.replace_dead(), f"a worker died\n{fleet.logs()}"
            started = len(read_ledger(ledger))  # cheap progress: tasks started at least once
            if started >= N and time.monotonic() >= next_count:  # a full scan: not too often
                got = await _done(watcher)
                done = got if got is not None else done
                progress.append(f"{time.monotonic() - t0:.0f}s:{started}/{got}")
                next_count = time.monotonic() + 3.0
            if len(progress) < 2 * (time.monotonic() - t0) // 5:
                progress.append(f"{time.monotonic() - t0:.0f}s:{started}")
            if not killed_at and started >= N // 4:
                killed_at = time.monotonic_ns()
                victim.kill()
                kill_started = started
            elif (
                killed_at
                and not back_at
                and (started >= kill_started + N // 5 or time.monotonic_ns() - killed_at > 8e9)
            ):
                victim.start()  # same port, same data directory: it rejoins and catches up
                back_at = time.monotonic_ns()
            await anyio.sleep(0.2)
        elapsed = time.monotonic() - t0
        await watcher.__aexit__(None, None, None)
        assert killed_at and back_at, "the batch drained before the node kill"
        fleet.stop()
        for attempt in range(5):  # bulk reads of a loaded R3 cluster may miss the 5 s reply
            try:
                a = await audit(
                    url, tasks, tags, ledger, workers=fleet.all_pids, interrupted=fleet.killed,
                    events_url=events,
                )  # fmt: skip
                break
            except BackendUnavailableError:
                if attempt == 4:
                    raise
    finally:
        if fleet is not None:
            fleet.close()
        node_logs = cluster.logs()  # the nodes' directories go with close()
        cluster.close()
    if a.lost:  # printed whole: an assertion message this long is cut short
        print("lost tasks:", *a.lost_detail, sep="\n")
        print(fleet.logs() if fleet is not None else "", node_logs, sep="\n")
    # Re-runs are explained when a run they repeat started while the node was down
    # (or within a lease before, when its completion could not be acknowledged).
    window = (killed_at - int((LEASE + 5) * 1e9), back_at + int(10e9))
    runs = read_ledger(ledger)
    outside = [
        tag for tag in a.unexplained
        if any(not (window[0] <= r.t <= window[1]) for r in runs[tag][:-1])
    ]  # fmt: skip
    record(
        a.line("nats cluster R3, node SIGKILL", kills=1, seconds=elapsed,
               extra=f"rate={N / elapsed:.0f}/s outage={(back_at - killed_at) / 1e9:.1f}s")
    )  # fmt: skip
    assert not a.lost, (a.statuses, len(a.lost), a.lost_detail[:2])
    assert a.succeeded == N and a.results_ok == N
    assert not a.duplicate_completions, a.duplicate_completions[:5]
    assert not outside, outside[:5]


async def _leader(be: Any, stream: str) -> str:
    info = await be.js.api(f"STREAM.INFO.{stream}")
    return str(info["cluster"]["leader"])


async def test_nats_cluster_finish_while_results_leader_down() -> None:
    """``finish`` stores the results with the completions; the streams' leaders sit on
    different servers. With the results bucket's leader SIGKILLed (the task records'
    leader alive), no completion may be stored without its result: the finish fails
    until a new leader is elected, then its retry stores both (the lease still held)."""
    cluster = NatsCluster(base=14622).start()
    try:
        url = cluster.url(namespace="OQFINISH", replicas=3)
        await _ready(url)
        async with open_storage(url) as be:
            assert be.tasks is not None and be.results is not None
            tasks_stream, results_stream = f"KV_{be.tasks_bucket}", f"KV_{be.results_bucket}"
            end = time.monotonic() + 60
            while (lr := await _leader(be, results_stream)) == await _leader(be, tasks_stream):
                assert time.monotonic() < end, "the two buckets' leaders stayed on one server"
                with contextlib.suppress(BackendUnavailableError, nats.js.errors.APIError):
                    await be.js.api(f"STREAM.LEADER.STEPDOWN.{tasks_stream}")
                await anyio.sleep(0.5)  # a new election takes its time; polled to a deadline
            tasks = [Task(func="chaos_tasks:awork") for _ in range(20)]
            await be.tasks.enqueue(tasks)
            got = await be.tasks.claim(["default"], "host:1:w", limit=20, lease=120.0)
            assert len(got) == 20
            next(n for n in cluster.nodes if n.name == lr).kill()
            completions = [Completion(c.task.id, c.token) for c in got]
            results = [
                TaskResult(task_id=c.task.id, status=TaskStatus.SUCCESS, attempts=1,
                           finished_at=now(), worker_id="host:1:w")
                for c in got
            ]  # fmt: skip
            failed = 0
            end = time.monotonic() + 60
            while True:
                try:
                    report = await be.tasks.finish(completions, results, be.results, lease=120.0)
                    break
                except (BackendUnavailableError, StorageError):
                    failed += 1
                    assert time.monotonic() < end, "no results leader elected"
                    await anyio.sleep(0.2)
            assert failed, "the finish ran after the results bucket had a new leader"
            assert sorted(report.done) == sorted(t.id for t in tasks), report
            ids = [t.id for t in tasks]
            stored = await be.tasks.get(ids)  # answered by the leaders: no replica lag
            assert all(t is not None and t.status is TaskStatus.SUCCESS for t in stored), [
                t.status if t else None for t in stored
            ]
            kept = await be.results.get(ids)
            assert all(r is not None and r.status is TaskStatus.SUCCESS for r in kept), [
                tid for tid, r in zip(ids, kept, strict=True) if r is None
            ]
    finally:
        cluster.close()


async def test_nats_cluster_reads_see_acknowledged_writes() -> None:
    """A read sent after a write's acknowledgement sees the write, whichever server the
    reader is connected to. A write is acknowledged once the leader and one follower
    stored it; the other follower may not have yet. Here that follower is paused
    (SIGSTOP) while each write is made and resumed before the read, which goes through
    its server: a direct get would be answered by its own replica, still without the
    write; with replicas, reads are answered by the bucket's stream leader."""
    cluster = NatsCluster(base=14652).start()
    try:
        url = cluster.url(namespace="OQREAD", replicas=3)
        await _ready(url)
        async with open_storage(url) as probe:
            buckets = (probe.tasks_bucket, probe.results_bucket)
            leaders = {await _leader(probe, f"KV_{b}") for b in buckets}
        behind = next(n for n in cluster.nodes if n.name not in leaders)
        ahead = next(n for n in cluster.nodes if n is not behind)
        assert behind.proc is not None

        def through(node: Any) -> str:
            return f"nats://127.0.0.1:{node.port}?namespace=OQREAD&replicas=3"

        async with open_storage(through(ahead)) as w, open_storage(through(behind)) as r:
            assert w.results is not None and r.results is not None
            missed: list[str] = []
            for _ in range(200):
                tid = Task(func="chaos_tasks:awork").id
                ok = TaskStatus.SUCCESS
                res = TaskResult(task_id=tid, status=ok, attempts=1, finished_at=now())
                behind.proc.send_signal(signal.SIGSTOP)
                try:
                    await w.results.put([res])
                finally:
                    behind.proc.send_signal(signal.SIGCONT)
                if (await r.results.get([res.task_id]))[0] is None:
                    missed.append(res.task_id)
            assert not missed, f"{len(missed)} of 200 stored results read as missing"
    finally:
        cluster.close()
