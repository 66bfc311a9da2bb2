"""Cost of browsing finished tasks: ``count`` and ``list`` over N tasks that ended
with a small result (docs/performance.md).

Enqueues N tasks, claims and finishes them in batches of 200 with a result of a few
bytes (what a worker stores for a small return value), then times ``count(status=
success)`` and ``list(status=success, limit=100)`` seven times each and prints the
medians. On NATS both read every task record, so what a finished record carries shows
here. Uses a fresh namespace per engine and drops it afterwards.

    N=10000 uv run python -m benchmarks.browse nats redis postgresql
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import time

import msgspec

from omniq.models import Payload, Task, TaskResult, TaskStatus, now
from omniq.storage import Completion, open_storage
from omniq.storage.testing.servers import drop_namespace, unique_url

N = int(os.environ.get("N", "10000"))
ROUNDS = 7


async def run(engine: str) -> None:
    url = unique_url(engine)
    try:
        async with open_storage(url) as be:
            q = be.tasks
            assert q is not None and be.results is not None
            tasks = [
                Task(func="m:f", payload=Payload("msgpack", msgspec.msgpack.encode([i])))
                for i in range(N)
            ]
            for i in range(0, N, 500):
                await q.enqueue(tasks[i : i + 500])
            value = Payload("msgpack", msgspec.msgpack.encode({"ok": True}))
            done = 0
            while done < N:
                claims = await q.claim(["default"], "w", limit=200, lease=60.0)
                results = [
                    TaskResult(
                        task_id=c.task.id,
                        status=TaskStatus.SUCCESS,
                        payload=value,
                        attempts=1,
                        started_at=now(),
                        finished_at=now(),
                        worker_id="w-bench",
                        expires_at=now() + 3600.0,
                        queue=c.task.queue,
                    )
                    for c in claims
                ]
                completions = [Completion(c.task.id, c.token) for c in claims]
                await q.finish(completions, results, be.results, lease=60.0)
                done += len(claims)
            counts: list[float] = []
            lists: list[float] = []
            for _ in range(ROUNDS):
                t0 = time.perf_counter()
                n = await q.count(status=TaskStatus.SUCCESS)
                t1 = time.perf_counter()
                await q.list(status=TaskStatus.SUCCESS, limit=100)
                t2 = time.perf_counter()
                counts.append(t1 - t0)
                lists.append(t2 - t1)
            assert n == N, n
            print(
                f"{engine:10} {N} finished: count median "
                f"{statistics.median(counts) * 1000:.1f} ms, list(limit=100) median "
                f"{statistics.median(lists) * 1000:.1f} ms"
            )
    finally:
        drop_namespace(url)


if __name__ == "__main__":
    for name in sys.argv[1:] or ["nats", "redis", "postgresql"]:
        asyncio.run(run(name))
