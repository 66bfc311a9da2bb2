"""Cost of ``cancel_with_results`` on the networked engines: the atomic override (one
transaction / script / record write per task) against the default path of
``TaskQueueStorage`` (``cancel``, then read the ended tasks, then one ``put``).

Each round enqueues ``BATCH`` delayed tasks and cancels them in one call; prints the
median wall time per call of each path, the two paths alternated twice (A/B/A/B) in
the same minutes. Uses a fresh namespace per engine and drops it afterwards.

    uv run python -m benchmarks.ended_results postgresql redis nats
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import time

from omniq.models import Task
from omniq.storage import ResultRecord, TaskQueueStorage, open_storage
from omniq.storage.testing.servers import drop_namespace, unique_url

N = int(os.environ.get("N", "40"))
BATCH = int(os.environ.get("BATCH", "20"))


async def run(engine: str) -> None:
    url = unique_url(engine)
    try:
        async with open_storage(url) as be:
            q, rs = be.tasks, be.results
            assert q is not None and rs is not None
            rec = ResultRecord(rs, retention=600.0)
            out: dict[str, list[float]] = {}
            for mode in ("default", "atomic", "default", "atomic"):
                for _ in range(N):
                    tasks = [Task(func="m:f", eta=time.time() + 3600) for _ in range(BATCH)]
                    await q.enqueue(tasks)
                    ids = [t.id for t in tasks]
                    t0 = time.perf_counter()
                    if mode == "atomic":
                        await q.cancel_with_results(ids, rec)
                    else:
                        await TaskQueueStorage.cancel_with_results(q, ids, rec)
                    out.setdefault(mode, []).append(time.perf_counter() - t0)
            for mode, times in out.items():
                ms = statistics.median(times) * 1000
                print(f"{engine:10} {mode:8} median {ms:.2f} ms per cancel of {BATCH}")
    finally:
        drop_namespace(url)


if __name__ == "__main__":
    for name in sys.argv[1:] or ["postgresql", "redis", "nats"]:
        asyncio.run(run(name))
