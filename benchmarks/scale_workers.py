"""Drain rate against worker processes, per engine: ``uv run python
benchmarks/scale_workers.py [N] [PROCS...]``.

For each engine (PostgreSQL, Redis, NATS on their shared test servers, each run in a
fresh namespace) and each count of worker processes (``omniq`` workers as in
``tests/chaos``, 16 concurrent no-op coroutine tasks each): enqueue N tasks, start the
processes, and time from the first task start to the last (the ledger the tasks
write). Prints one line per run; docs/scaling.md has a table of them.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests" / "chaos"), str(ROOT)]

import chaos_tasks as ct  # noqa: E402
from chaos_fleet import Fleet, read_ledger  # noqa: E402

from omniq.core import OmniQ  # noqa: E402
from omniq.storage import open_storage  # noqa: E402
from omniq.storage.testing.servers import unique_url  # noqa: E402

ENGINES = {"postgres": "postgresql", "redis": "redis", "nats": "nats"}


async def run(engine: str, n: int, procs: int) -> float:
    url = unique_url(ENGINES[engine])
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        ledger = tmp / "ledger"
        async with OmniQ(url, url) as oq:
            tasks = [oq.build(ct.awork, (str(ledger), f"t{i}", 0.0)) for i in range(n)]
            for i in range(0, n, 1000):
                await oq.enqueue_many(tasks[i : i + 1000])
            fleet = Fleet({"url": url, "lease": 30.0, "concurrency": 16}, tmp, size=procs)
            fleet.start()
            try:
                end = time.monotonic() + 300
                while len(read_ledger(ledger)) < n and time.monotonic() < end:  # noqa: ASYNC110
                    await asyncio.sleep(0.2)  # polling a file other processes write
                fleet.stop()
            finally:
                fleet.close()
            runs = read_ledger(ledger)
            first = min(r[0].t for r in runs.values())
            last = max(r[-1].t for r in runs.values())
        async with open_storage(url) as backend:
            await backend.drop()  # type: ignore[attr-defined]
        return len(runs) / ((last - first) / 1e9)


async def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 3000
    counts = [int(a) for a in sys.argv[2:]] or [1, 2, 4]
    for engine in ENGINES:
        for p in counts:
            rate = await run(engine, n, p)
            print(f"{engine:9s} procs={p} tasks={n} rate={rate:.0f}/s", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
