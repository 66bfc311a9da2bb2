"""Leases under stalls: a SIGSTOPped worker is fenced off, a heartbeating one is not.

- SIGSTOP a worker mid-task beyond its lease; another worker reclaims and completes the
  task; SIGCONT: the stale worker finishes its run, but its completion is refused
  (its log says its outcome was discarded or its lease lost), the result and the one
  COMPLETE event stay the new owner's.
- A task running 5x the lease while its worker heartbeats runs exactly once, although
  another idle worker keeps claiming.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import anyio
import chaos_tasks as ct
import pytest
from chaos_fleet import Fleet, read_ledger, record, worker_pid

from omniq.core import OmniQ
from omniq.models import EventType, TaskResult, TaskStatus
from omniq.storage import open_storage

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

BACKEND_IDS = ["sqlite", "file-local", "postgres", "redis", "nats"]
WAIT = 60.0


async def _result(url: str, task_id: str, timeout: float = WAIT) -> TaskResult:  # noqa: ASYNC109
    async with open_storage(url) as b:
        assert b.results is not None
        r = await b.results.wait(task_id, timeout)
    assert r is not None, f"no result for {task_id} after {timeout}s"
    return r


async def _poll(cond: object, what: str, timeout: float = WAIT) -> None:  # noqa: ASYNC109
    end = time.monotonic() + timeout
    while not cond():  # type: ignore[operator]
        assert time.monotonic() < end, f"timed out waiting for {what}"
        await anyio.sleep(0.05)


@pytest.mark.parametrize("backend_id", BACKEND_IDS)
async def test_sigstopped_worker_past_its_lease_is_fenced(
    backend_id: str, chaos_url: str, tmp_path: Path
) -> None:
    lease = 1.0
    url = chaos_url
    events = f"sqlite:///{tmp_path / 'events.db'}"
    ledger = tmp_path / "ledger"
    cfg = {"url": url, "events": events, "lease": lease, "concurrency": 2}
    async with OmniQ(url, url, events, lease_seconds=lease) as oq:
        task = await oq.enqueue(
            ct.work_then_mark, (str(ledger), "fenced", 2.0), worker="thread", max_retries=3
        )
    fleet = Fleet(cfg, tmp_path, size=1).start()
    t0 = time.monotonic()
    try:
        a = fleet.procs[0]
        await _poll(lambda: "fenced" in read_ledger(ledger), "the first run to start")
        assert read_ledger(ledger)["fenced"][0].pid == a.pid
        fleet.signal(a, signal.SIGSTOP)
        fleet.killed.add(a.pid)  # counts as interrupted for the audit
        b = fleet.spawn()
        r = await _result(url, task.id)
        assert r.ok and worker_pid(r) == b.pid, r
        os.kill(a.pid, signal.SIGCONT)
        await _poll(
            lambda: any(x.pid == a.pid and x.what == "end" for x in read_ledger(ledger)["fenced"]),
            "the stale run to finish",
        )
        log = fleet.log_dir / "worker-1.log"
        fenced = ("discarding outcomes", "was lost")
        await _poll(lambda: any(m in log.read_text() for m in fenced), "the stale worker's refusal")
        assert fleet.stop() == [0, 0]
    finally:
        fleet.close()
    after = await _result(url, task.id)
    assert after.ok and worker_pid(after) == b.pid and after.attempts == 2, after
    async with open_storage(url) as st, open_storage(events) as ev:
        assert st.tasks is not None and ev.events is not None
        stored = await st.tasks.get_one(task.id)
        completes = await ev.events.query(task_id=task.id, types=[EventType.COMPLETE])
    assert stored is not None and stored.status is TaskStatus.SUCCESS
    assert len(completes) == 1 and worker_pid_of(completes[0].worker_id) == b.pid
    runs = read_ledger(ledger)["fenced"]
    how = (
        "discarded (fenced)"
        if "discarding outcomes" in log.read_text()
        else "abandoned (lease lost)"
    )
    record(
        f"[chaos] sigstop-fencing {backend_id}: tasks=1 "
        f"runs={sum(x.what == 'start' for x in runs)} "
        f"kills=0 stops=1 duplicates={len(completes) - 1} losses=0 "
        f"stale-outcome={how} time={time.monotonic() - t0:.1f}s"
    )


def worker_pid_of(worker_id: str | None) -> int | None:
    parts = (worker_id or "").split(":")
    return int(parts[-2]) if len(parts) >= 3 and parts[-2].isdigit() else None


@pytest.mark.parametrize("backend_id", BACKEND_IDS)
async def test_task_running_five_leases_with_heartbeats_runs_once(
    backend_id: str, chaos_url: str, tmp_path: Path
) -> None:
    lease = 1.0
    url = chaos_url
    ledger = tmp_path / "ledger"
    cfg = {"url": url, "lease": lease, "concurrency": 2}
    async with OmniQ(url, url, lease_seconds=lease) as oq:
        task = await oq.enqueue(ct.awork, (str(ledger), "long", 5 * lease), max_retries=3)
    fleet = Fleet(cfg, tmp_path, size=2).start()
    t0 = time.monotonic()
    try:
        r = await _result(url, task.id)
        assert fleet.stop() == [0, 0]
    finally:
        fleet.close()
    runs = read_ledger(ledger)["long"]
    record(
        f"[chaos] heartbeat-5x-lease {backend_id}: tasks=1 runs={len(runs)} kills=0 "
        f"duplicates={len(runs) - 1} losses={0 if r.ok else 1} "
        f"time={time.monotonic() - t0:.1f}s"
    )
    assert r.ok and r.attempts == 1, r
    assert len(runs) == 1
