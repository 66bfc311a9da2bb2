"""SIGTERM with tasks in flight: every worker exits cleanly within its grace, each held
task is either finished or handed back at once (nothing left RUNNING to wait for a lease
to expire), and a fresh fleet then completes everything: none lost."""

from __future__ import annotations

import time
from pathlib import Path

import anyio
import chaos_tasks as ct
import pytest
from chaos_fleet import Fleet, audit, read_ledger, record

from omniq.core import OmniQ
from omniq.models import TaskStatus
from omniq.storage import open_storage

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

BACKEND_IDS = ["sqlite", "file-local", "postgres", "redis", "nats"]
N = 240
GRACE = 0.3


@pytest.mark.parametrize("backend_id", BACKEND_IDS)
async def test_sigterm_in_flight_finishes_or_hands_back(
    backend_id: str, chaos_url: str, tmp_path: Path
) -> None:
    url = chaos_url
    events = f"sqlite:///{tmp_path / 'events.db'}"
    ledger = tmp_path / "ledger"
    tags = [f"s{i}" for i in range(N)]
    # Half finish inside the grace, half are still running when it ends.
    async with OmniQ(url, url, events, lease_seconds=30.0) as oq:
        tasks = [
            oq.build(ct.awork, (str(ledger), tag, 0.1 if i % 2 else 1.0), max_retries=3)
            for i, tag in enumerate(tags)
        ]
        await oq.enqueue_many(tasks)
    # A long lease: anything not handed back would stay RUNNING for 30 s.
    cfg = {"cli": True, "url": url, "events": events, "lease": 30.0, "concurrency": 8,
           "pool": {"shutdown_grace": GRACE}}  # fmt: skip
    first = Fleet(cfg, tmp_path).start()
    t0 = time.monotonic()
    try:
        async with open_storage(url) as backend:
            assert backend.tasks is not None
            end = time.monotonic() + 60
            # Every worker is serving (its signal handlers are in place) and holds tasks.
            while (
                len({r.pid for rs in read_ledger(ledger).values() for r in rs}) < 3
                or await backend.tasks.count(status=TaskStatus.RUNNING) < 20
            ):
                assert time.monotonic() < end, first.logs()
                await anyio.sleep(0.05)
            stopping = time.monotonic()
            codes = first.stop(timeout=GRACE + 15)
            stop_time = time.monotonic() - stopping
            stranded = await backend.tasks.count(status=TaskStatus.RUNNING)
            done_before = await backend.tasks.count(status=TaskStatus.SUCCESS)
    finally:
        first.close()
    assert codes == [0, 0, 0], first.logs()
    assert stranded == 0, f"{stranded} tasks left RUNNING after a graceful stop"
    second = Fleet(dict(cfg, lease=5.0), tmp_path).start()
    try:
        async with open_storage(url) as backend:
            assert backend.tasks is not None
            end = time.monotonic() + 120
            while await backend.tasks.count(status=TaskStatus.SUCCESS) < N:
                assert time.monotonic() < end, second.logs()
                await anyio.sleep(0.1)
        second.stop()
    finally:
        second.close()
    a = await audit(
        url,
        tasks,
        tags,
        ledger,
        workers=first.all_pids + second.all_pids,
        interrupted=first.terminated,
        events_url=events,
    )
    record(
        a.line(
            f"sigterm {backend_id}",
            kills=0,
            seconds=time.monotonic() - t0,
            extra=f"terms=3 stop={stop_time:.1f}s done-before-stop={done_before} "
            f"handed-back={a.reruns} stranded={stranded}",
        )
    )
    assert stop_time < GRACE + 10
    assert not a.lost, (a.statuses, a.lost[:5])
    assert not a.duplicate_completions and not a.unexplained
