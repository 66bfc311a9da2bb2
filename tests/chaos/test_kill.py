"""SIGKILL storms: a random worker of three dies every ~2 s, and at least as progress
passes each fifth of the batch, while a batch of tasks runs.

Every task must end successful with one success result, never two accepted completions
(COMPLETE events), and a task may start more than once only when its earlier runs were
in workers the test killed (ledger pids against killed pids). Matrix: every backend
with the async worker type, plus the thread, process and gevent types on SQLite (see
docs/guarantees.md for why not the full product).
"""

from __future__ import annotations

import time
from pathlib import Path

import anyio
import chaos_tasks as ct
import pytest
from chaos_fleet import Fleet, audit, record

from omniq.core import OmniQ
from omniq.models import TaskStatus
from omniq.storage import open_storage

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

LEASE = 2.0
KILL_EVERY = 2.0
TASK_SECONDS = 0.02
# Tasks per storm: 5,000, except on NATS (each claim/complete is several JetStream
# round trips) and on process and gevent workers (a process task also crosses a pipe to
# a child; gevent drains more slowly under kills). Sized so the whole chaos suite fits
# the CI budget on a 2-core machine.
N = {
    ("sqlite", "async"): 5000,
    ("file-local", "async"): 5000,
    ("postgres", "async"): 5000,
    ("redis", "async"): 5000,
    ("nats", "async"): 3000,
    ("sqlite", "thread"): 5000,
    ("sqlite", "process"): 3000,
    ("sqlite", "gevent"): 3000,
}
MATRIX = list(N)


@pytest.mark.parametrize(("backend_id", "wtype"), MATRIX, ids=[f"{b}-{w}" for b, w in MATRIX])
async def test_sigkill_storm_loses_nothing(
    backend_id: str, wtype: str, chaos_url: str, tmp_path: Path
) -> None:
    n = N[(backend_id, wtype)]
    url = chaos_url
    events = f"sqlite:///{tmp_path / 'events.db'}"
    ledger = tmp_path / "ledger"
    tags = [f"t{i}" for i in range(n)]
    func = ct.awork if wtype == "async" else ct.work
    hint = None if wtype == "async" else wtype
    async with OmniQ(url, url, events, lease_seconds=LEASE) as oq:
        tasks = [
            oq.build(func, (str(ledger), tag, TASK_SECONDS), worker=hint, max_retries=10)
            for tag in tags
        ]
        for i in range(0, n, 1000):
            await oq.enqueue_many(tasks[i : i + 1000])
    cfg = {
        "cli": True,
        "url": url,
        "events": events,
        "lease": LEASE,
        "concurrency": 8,
        "pool": {"thread_workers": 8, "process_workers": 2},
    }
    fleet = Fleet(cfg, tmp_path).start()
    kills = 0
    t0 = time.monotonic()
    try:
        async with open_storage(url) as backend:
            assert backend.tasks is not None
            next_kill = t0 + KILL_EVERY
            # Kills every KILL_EVERY seconds, and also as progress passes each fifth of
            # the batch: a fast machine that drains in a few seconds still gets its kills.
            milestones = [n * k // 5 for k in range(1, 5)]
            while (done := await backend.tasks.count(status=TaskStatus.SUCCESS)) < n:
                assert time.monotonic() - t0 < 240, f"not drained\n{fleet.logs()}"
                assert not fleet.replace_dead(), f"a worker died on its own\n{fleet.logs()}"
                behind = kills < len(milestones) and done >= milestones[kills]
                if behind or time.monotonic() >= next_kill:
                    fleet.kill_random()
                    kills += 1
                    next_kill = time.monotonic() + KILL_EVERY
                await anyio.sleep(0.1)
        elapsed = time.monotonic() - t0
        fleet.stop()
    finally:
        fleet.close()
    a = await audit(
        url,
        tasks,
        tags,
        ledger,
        workers=fleet.all_pids,
        interrupted=fleet.killed,
        events_url=events,
    )
    record(
        a.line(
            f"sigkill {backend_id}/{wtype}",
            kills=kills,
            seconds=elapsed,
            extra=f"rate={n / elapsed:.0f}/s",
        )
    )
    assert kills >= 3, "the storm ended before three kills"
    assert not a.lost, (a.statuses, a.lost[:5])
    assert a.succeeded == n and a.results_ok == n
    assert not a.duplicate_completions, a.duplicate_completions[:5]
    assert not a.unexplained, a.unexplained[:5]
    assert a.runs >= n
