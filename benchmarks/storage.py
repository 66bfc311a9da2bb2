"""Storage backend throughput: enqueue and claim+complete rates at several batch sizes.

    uv run python benchmarks/storage.py [-n 5000] [--batch 1 100] [--backends memory sqlite]

Each (backend, batch) pair gets a fresh store. Adding a backend is one BACKENDS entry:
an id mapped to a function from a scratch directory to a storage URL (e.g. a
postgresql:// URL with a unique schema for a server backend).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from omniq.models import Task
from omniq.storage import Completion, open_storage

REDIS_URL = os.environ.get("OMNIQ_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
POSTGRES_URL = os.environ.get(
    "OMNIQ_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)

NATS_URL = os.environ.get("OMNIQ_BENCH_NATS_URL", "nats://127.0.0.1:4222")
BACKENDS: dict[str, Callable[[Path], str]] = {
    "memory": lambda d: "memory://",
    "sqlite": lambda d: f"sqlite:///{d / 'bench.db'}",
    "file-local": lambda d: (d / "file-store").as_uri(),
    "file-memfs": lambda d: f"file+memory://bench-{uuid.uuid4().hex}",
    # Server engines: a fresh namespace per run, dropped afterwards.
    "redis": lambda d: f"{REDIS_URL}?prefix=omniq-bench-{uuid.uuid4().hex[:12]}:",
    "postgres": lambda d: f"{POSTGRES_URL}?schema=omniq_bench_{uuid.uuid4().hex[:12]}",
    "nats": lambda d: f"{NATS_URL}?namespace=OQBENCH{uuid.uuid4().hex[:12].upper()}",
}


async def bench(url: str, n: int, batch: int) -> tuple[float, float]:
    """(enqueue tasks/s, claim+complete tasks/s) for ``n`` tasks in batches of ``batch``."""
    tasks = [Task(func="bench:noop", queue="bench") for _ in range(n)]
    async with open_storage(url) as store:
        assert store.tasks is not None
        q = store.tasks
        start = time.perf_counter()
        for i in range(0, n, batch):
            await q.enqueue(tasks[i : i + batch])
        enqueue_rate = n / (time.perf_counter() - start)
        done = 0
        start = time.perf_counter()
        while done < n:
            claimed = await q.claim(["bench"], "bench-worker", limit=batch, lease=60)
            if not claimed:
                raise RuntimeError(f"only {done} of {n} tasks could be claimed")
            report = await q.complete([Completion(c.task.id, c.token) for c in claimed])
            assert not report.stale
            done += len(claimed)
        claim_rate = n / (time.perf_counter() - start)
        drop = getattr(store, "drop", None)
        if drop is not None:
            await drop()
    return enqueue_rate, claim_rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=5000, help="tasks per run (default 5000)")
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 100])
    parser.add_argument(
        "--backends", nargs="+", default=list(BACKENDS), help="ids, space- or comma-separated"
    )
    args = parser.parse_args()
    args.backends = [b for arg in args.backends for b in arg.split(",") if b]
    unknown = sorted(set(args.backends) - set(BACKENDS))
    if unknown:
        parser.error(f"unknown backends {unknown}; choose from {list(BACKENDS)}")
    print(f"{'backend':<12} {'batch':>5} {'enqueue/s':>12} {'claim+complete/s':>17}")
    for name in args.backends:
        for batch in args.batch:
            with tempfile.TemporaryDirectory(prefix="omniq-bench-") as tmp:
                enq, claim = asyncio.run(bench(BACKENDS[name](Path(tmp)), args.n, batch))
            print(f"{name:<12} {batch:>5} {enq:>12,.0f} {claim:>17,.0f}", flush=True)


if __name__ == "__main__":
    main()
