"""Poison tasks end dead-lettered (terminal ``error``) after their attempts, without
crash-looping the fleet: one that ``os._exit``s its worker process takes down at most
``max_retries + 1`` workers (each replaced, as a supervisor would), one that dies in a
process-worker child or blows its memory limit takes down none; the healthy tasks
enqueued beside them all complete."""

from __future__ import annotations

import time
from pathlib import Path

import anyio
import chaos_tasks as ct
import pytest
from chaos_fleet import Fleet, read_ledger, record

from omniq.core import OmniQ
from omniq.models import TaskStatus
from omniq.storage import open_storage

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

LEASE = 1.5
RETRIES = 2
HEALTHY = 300


async def _drive(url: str, fleet: Fleet, ids: list[str], timeout: float = 90.0) -> None:  # noqa: ASYNC109
    """Replace dead workers until every task in ``ids`` is terminal."""
    async with open_storage(url) as b:
        assert b.tasks is not None
        end = time.monotonic() + timeout
        while True:
            fleet.replace_dead()
            got = await b.tasks.get(ids)
            if all(
                t is not None and t.status in (TaskStatus.SUCCESS, TaskStatus.ERROR) for t in got
            ):
                return
            assert time.monotonic() < end, fleet.logs()
            await anyio.sleep(0.1)


@pytest.mark.parametrize("where", ["in-worker", "process-child", "memory-limit"])
@pytest.mark.parametrize("backend_id", ["sqlite"])
async def test_poison_task_is_dead_lettered_without_crash_looping(
    backend_id: str, where: str, chaos_url: str, tmp_path: Path
) -> None:
    url = chaos_url
    ledger = tmp_path / "ledger"
    async with OmniQ(url, url, lease_seconds=LEASE) as oq:
        if where == "in-worker":
            poison = oq.build(ct.die, (str(ledger), "poison"), worker="thread", max_retries=RETRIES)
        elif where == "process-child":
            poison = oq.build(
                ct.die, (str(ledger), "poison"), worker="process", max_retries=RETRIES
            )
        else:
            poison = oq.build(
                ct.blow_memory, (str(ledger), "poison", 256), worker="process", max_retries=RETRIES
            )
        healthy = [
            # Tasks the dying worker held share its fate (each crash costs them an
            # attempt too: the same neighbours are reclaimed with the poison, FIFO), so
            # they get more attempts than the poison's deaths.
            oq.build(ct.awork, (str(ledger), f"h{i}", 0.02), max_retries=RETRIES + 3)
            for i in range(HEALTHY)
        ]
        await oq.enqueue_many([poison, *healthy])
    cfg = {"url": url, "lease": LEASE, "concurrency": 4, "retry_delay": 0.05,
           "pool": {"process_workers": 1}}  # fmt: skip
    fleet = Fleet(cfg, tmp_path).start()
    t0 = time.monotonic()
    try:
        await _drive(url, fleet, [poison.id, *(t.id for t in healthy)])
        fleet.stop()
    finally:
        fleet.close()
    async with open_storage(url) as b:
        assert b.tasks is not None and b.results is not None
        stored = await b.tasks.get_one(poison.id)
        r = await b.results.get_one(poison.id)
        ok = await b.tasks.count(status=TaskStatus.SUCCESS)
    ledger_runs = read_ledger(ledger)
    runs = len(ledger_runs["poison"])
    collateral = sum(len(v) > 1 for k, v in ledger_runs.items() if k != "poison")
    deaths = len(fleet.deaths)
    record(
        f"[chaos] poison {where} {backend_id}: tasks={HEALTHY + 1} poison-runs={runs} "
        f"worker-deaths={deaths} healthy-ok={ok}/{HEALTHY} collateral-reruns={collateral} "
        f"losses={HEALTHY - ok} "
        f"dead-lettered={int(stored is not None and stored.status is TaskStatus.ERROR)} "
        f"error={r.error.type if r and r.error else None} time={time.monotonic() - t0:.1f}s"
    )
    assert stored is not None and stored.status is TaskStatus.ERROR
    assert r is not None and r.status is TaskStatus.ERROR and r.error is not None
    assert ok == HEALTHY
    assert runs <= RETRIES + 1
    if where == "in-worker":
        assert r.error.type.endswith("WorkerCrashedError"), r.error
        assert deaths == runs, (deaths, runs)
    else:
        assert deaths == 0, fleet.logs()
        assert runs == RETRIES + 1
        if where == "memory-limit":
            assert r.error.type.endswith("MemoryError"), r.error
