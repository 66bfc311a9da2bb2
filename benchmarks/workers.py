"""No-op throughput of AsyncWorkerPool per worker type, with an in-memory source/sink.

    uv run python benchmarks/workers.py [--tasks N] [--types async,thread,process,gevent]

Measures the pool itself (claiming, routing, decoding, executing, outcome batching);
a real backend adds its own claim/report cost on top.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections import deque
from collections.abc import Sequence

from omniq.models import ClaimedTask, Task, WorkerType
from omniq.workers import AsyncWorkerPool, Outcome


async def anoop() -> None:
    return None


def noop() -> None:
    return None


class Source:
    def __init__(self, tasks: list[Task]) -> None:
        self.pending = deque(tasks)

    async def claim(self, limit: int) -> list[ClaimedTask]:
        pending = self.pending
        n = min(limit, len(pending))
        exp = time.time() + 30
        return [
            ClaimedTask(task=pending.popleft(), token="t", lease_expires_at=exp, worker_id="bench")
            for _ in range(n)
        ]

    async def renew(self, claims: Sequence[ClaimedTask]) -> set[str]:
        return set()

    async def release(self, claims: Sequence[ClaimedTask]) -> None:
        return None

    async def wait_for_work(self, timeout: float) -> bool:  # noqa: ASYNC109
        return bool(self.pending)


class Sink:
    def __init__(self) -> None:
        self.n = 0

    async def started(self, claims: Sequence[ClaimedTask]) -> None:
        return None

    async def report(self, outcomes: Sequence[Outcome]) -> None:
        self.n += len(outcomes)


FUNCS = {
    "async": "workers:anoop",
    "thread": "workers:noop",
    "process": "workers:noop",
    "gevent": "workers:noop",
}
CAPACITY = {"async": 1000, "thread": 8, "process": 2, "gevent": 1000}


async def bench(wt: str, n: int) -> float:
    tasks = [Task(func=FUNCS[wt], worker=WorkerType(wt)) for _ in range(n)]
    sink = Sink()
    pool = AsyncWorkerPool(
        Source(tasks),
        sink,
        max_workers=CAPACITY[wt],
        thread_workers=CAPACITY["thread"],
        process_workers=CAPACITY["process"],
        gevent_workers=CAPACITY["gevent"],
        default_timeout=0,
    )
    t0 = time.perf_counter()
    await pool.run(burst=True)
    dt = time.perf_counter() - t0
    assert sink.n == n, (sink.n, n)
    assert pool.stats.succeeded == n, pool.stats
    return n / dt


def main() -> None:
    import sys
    from pathlib import Path

    # Task functions must be importable by path (process children import them).
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sys.modules.setdefault("workers", sys.modules[__name__])

    ap = argparse.ArgumentParser()
    ap.add_argument("--tasks", type=int, default=50_000)
    ap.add_argument("--types", default="async,thread,process,gevent")
    args = ap.parse_args()
    for wt in args.types.split(","):
        n = args.tasks if wt != "process" else min(args.tasks, 10_000)
        rate = asyncio.run(bench(wt, n))
        print(f"{wt:8s} {n:7d} no-op tasks  {rate:10,.0f} tasks/s  (capacity {CAPACITY[wt]})")


if __name__ == "__main__":
    main()
