"""Several OS processes on one store: each task claimed once, each due run fired once."""

from __future__ import annotations

import multiprocessing
import queue
import time
from collections.abc import Callable
from typing import Any

import pytest

from omniq.models import Schedule, Task
from omniq.storage import Backend
from omniq.storage.testing import _mp
from omniq.storage.testing.helpers import NOOP, ss, task, tq


def _spawn(n: int, target: Callable[..., None], *args: Any) -> list[list[str]]:
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(n)
    out = ctx.Queue()
    procs = [
        ctx.Process(target=target, args=(*args[:1], barrier, out, *args[1:])) for _ in range(n)
    ]
    for p in procs:
        p.start()
    try:
        results: list[list[str]] = []
        deadline = time.monotonic() + 120
        while len(results) < n:
            try:
                results.append(out.get(timeout=0.5))
            except queue.Empty:
                dead = [p.exitcode for p in procs if p.exitcode not in (None, 0)]
                assert not dead, f"a child process failed: exit codes {dead}"
                assert time.monotonic() < deadline, "children did not finish in time"
    finally:
        for p in procs:
            p.join(30)
            if p.is_alive():
                p.kill()
    assert all(p.exitcode == 0 for p in procs)
    return results


class TestMultiprocess:
    """Several OS processes on one store: each task claimed once, each due run fired once."""

    pytestmark = [pytest.mark.anyio, pytest.mark.backends_with("multiprocess"), pytest.mark.slow]

    async def test_four_processes_claim_each_task_exactly_once(
        self,
        store_and_url: tuple[Backend, str],
    ) -> None:
        store, url = store_and_url
        q = tq(store)
        tasks = [task() for _ in range(5000)]
        for i in range(0, len(tasks), 500):
            await q.enqueue(tasks[i : i + 500])
        per_process = _spawn(4, _mp.claim_all, url, 25)
        claimed = [tid for ids in per_process for tid in ids]
        assert len(claimed) == len(set(claimed)) == 5000
        assert set(claimed) == {t.id for t in tasks}
        assert sum(1 for ids in per_process if ids) >= 2  # they really competed
        assert await q.count() == 5000

    async def test_two_processes_fire_each_due_run_once(
        self, store_and_url: tuple[Backend, str]
    ) -> None:
        store, url = store_and_url
        t0 = 1_800_000_000.0
        schedules = [
            Schedule.create(Task(func=NOOP), interval=60.0, start_at=t0, created_at=t0)
            for _ in range(30)
        ]
        await ss(store).put(schedules)
        per_process = _spawn(2, _mp.claim_schedules, url, t0 + 61)
        fired = [sid for ids in per_process for sid in ids]
        assert sorted(fired) == sorted(s.id for s in schedules)

    async def test_two_processes_enqueue_each_unique_key_once(
        self, store_and_url: tuple[Backend, str]
    ) -> None:
        store, url = store_and_url
        per_process = _spawn(2, _mp.enqueue_unique, url, 200)
        first, second = per_process
        # Both processes got the one task stored under each key, whichever stored it.
        assert first == second
        assert len(set(first)) == 200
        assert await tq(store).count() == 200
