"""Redis server time per task of each hot-path script (enqueue, claim, finish).

Runs the three scripts in separate phases against the task store directly (no worker,
no facade) and reads ``INFO commandstats`` around each phase, so each script's server
time is its own. Point it at a Redis nobody else uses (commandstats are server-wide):

    redis-server --port 6399 --save '' --appendonly no &
    URL=redis://127.0.0.1:6399/0 N=20000 B=100 uv run python -m benchmarks.redis_scripts

Prints, per phase: server µs per task (EVALSHA time / tasks), server µs per call, calls,
and the client's wall µs per task. ``single`` is one task per call, what ``await
oq.enqueue(...)`` sends (the lean ``enqueue_one`` script); ``single-b`` the same through
the batch script ``enqueue``, for comparison. The prefix is unique per run and dropped
after.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from typing import Any

from omniq.config import Settings
from omniq.models import TaskResult, TaskStatus, now
from omniq.queue import build_task
from omniq.serialization import SerializationManager
from omniq.storage import Completion
from omniq.storage._backends.redis._backend import RedisBackend
from omniq.storage._remote import encode


async def _stats(be: RedisBackend) -> dict[str, tuple[int, int]]:
    raw: dict[str, Any] = await be.redis.info("commandstats")
    return {k: (int(v["calls"]), int(v["usec"])) for k, v in raw.items()}


def _delta(a: dict[str, tuple[int, int]], b: dict[str, tuple[int, int]]) -> dict[str, Any]:
    out = {}
    for k, (calls, usec) in b.items():
        c0, u0 = a.get(k, (0, 0))
        if calls - c0:
            out[k] = (calls - c0, usec - u0)
    return out


def _report(name: str, n: int, wall: float, d: dict[str, Any]) -> None:
    calls, usec = d.get("cmdstat_evalsha", (0, 0))
    other = sum(u for k, (c, u) in d.items() if k != "cmdstat_evalsha")
    print(
        f"{name:8s} tasks={n:6d} calls={calls:6d} server µs/task={usec / n:7.2f} "
        f"µs/call={usec / max(calls, 1):8.1f} other µs/task={other / n:5.2f} "
        f"wall µs/task={wall / n * 1e6:7.1f}"
    )
    if os.environ.get("DETAIL"):
        for k, (c, u) in sorted(d.items(), key=lambda kv: -kv[1][1]):
            print(f"    {k[8:]:12s} calls/task={c / n:6.2f} µs/task={u / n:6.2f}")


async def main() -> None:
    url = os.environ.get("URL", "redis://127.0.0.1:6399/0")
    n = int(os.environ.get("N", "20000"))
    b = int(os.environ.get("B", "100"))
    singles = int(os.environ.get("SINGLE", "2000"))
    ser = SerializationManager.from_settings(Settings())
    st = Settings()
    be = RedisBackend(url, prefix=f"bench-{uuid.uuid4().hex[:8]}:")
    await be.connect()
    try:
        q = be.tasks
        tasks = [build_task(ser, st, "benchmarks.drain:noop", queue="bench") for _ in range(n)]
        await q.enqueue(tasks[:1])  # load the scripts
        s0 = await _stats(be)
        t0 = time.perf_counter()
        for i in range(1, n, b):
            await q.enqueue(tasks[i : i + b])
        t1 = time.perf_counter()
        s1 = await _stats(be)
        _report("enqueue", n - 1, t1 - t0, _delta(s0, s1))
        got = []
        t0 = time.perf_counter()
        while len(got) < n:
            c = await q.claim(["bench"], "w1", limit=b, lease=60)
            if not c:
                break
            got += c
        t1 = time.perf_counter()
        s2 = await _stats(be)
        _report("claim", len(got), t1 - t0, _delta(s1, s2))
        t0 = time.perf_counter()
        for i in range(0, len(got), b):
            part = got[i : i + b]
            t = now()
            comps = [Completion(c.task.id, c.token, TaskStatus.SUCCESS) for c in part]
            res = [
                TaskResult(
                    task_id=c.task.id,
                    status=TaskStatus.SUCCESS,
                    attempts=1,
                    started_at=t,
                    finished_at=t,
                    worker_id="w1",
                    expires_at=t + 3600,
                    queue="bench",
                )
                for c in part
            ]
            await q.finish(comps, res, be.results, lease=60)
        t1 = time.perf_counter()
        s3 = await _stats(be)
        _report("finish", len(got), t1 - t0, _delta(s2, s3))
        more = [build_task(ser, st, "benchmarks.drain:noop", queue="b2") for _ in range(singles)]
        t0 = time.perf_counter()
        for t in more:
            await q.enqueue([t])
        t1 = time.perf_counter()
        s4 = await _stats(be)
        _report("single", singles, t1 - t0, _delta(s3, s4))
        more = [build_task(ser, st, "benchmarks.drain:noop", queue="b2") for _ in range(singles)]
        t0 = time.perf_counter()
        for t in more:
            await q._enqueue([t], [encode(t)], "cancel")
        t1 = time.perf_counter()
        s5 = await _stats(be)
        _report("single-b", singles, t1 - t0, _delta(s4, s5))
    finally:
        await be.drop()
        await be.close()


if __name__ == "__main__":
    asyncio.run(main())
