"""JetStream requests per task on the NATS backend (docs/dev/optimisation-log.md).

Counts, through the backend's JetStream helpers (``JS.many`` and ``JS.pull``), the
requests and the sequential round trips (waves: a request sent while none is in
flight starts one) of single operations and of a whole drain:

- one ``enqueue`` of one task, one ``claim`` of one ready task by an idle worker (its
  second claim, as a running worker's), one ``finish`` of it;
- N no-ops enqueued with ``enqueue_many`` and drained by ``run_worker(burst=True)``
  (concurrency 100) in this process: requests and round trips per task.

    URL=nats://127.0.0.1:4222 N=5000 uv run python -m benchmarks.nats_requests

Round trips, not time: load-independent, so fit for a shared machine. Uses its own
namespace and drops it afterwards.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from omniq.core import OmniQ
from omniq.models import Payload, Task, TaskResult, TaskStatus, now
from omniq.storage import Completion, open_storage
from omniq.storage._backends.nats import _conn


class Count:
    requests = 0
    waves = 0
    inflight = 0

    @classmethod
    def reset(cls) -> tuple[int, int]:
        out = (cls.requests, cls.waves)
        cls.requests = cls.waves = 0
        return out


def _counted(fn: Callable[..., Awaitable[Any]], size: Callable[..., int]) -> Any:
    async def wrapper(*args: Any, **kw: Any) -> Any:
        if Count.inflight == 0:
            Count.waves += 1
        Count.requests += size(*args, **kw)
        Count.inflight += 1
        try:
            return await fn(*args, **kw)
        finally:
            Count.inflight -= 1

    return wrapper


_conn.JS.many = _counted(_conn.JS.many, lambda _self, reqs: len(reqs))  # type: ignore[method-assign]
_conn.JS.pull = _counted(_conn.JS.pull, lambda *_a, **_k: 1)  # type: ignore[method-assign]


def _show(what: str) -> None:
    req, waves = Count.reset()
    print(f"{what}: requests={req} round trips={waves}")


async def noop() -> None:
    return None


async def single_ops(url: str) -> None:
    async with open_storage(url) as be:
        q, r = be.tasks, be.results
        assert q is not None and r is not None
        warm = Task(func="benchmarks.nats_requests:noop")
        await q.enqueue([warm])
        [c] = await q.claim(["default"], "w", limit=100)
        await q.complete([Completion(warm.id, c.token)])
        await q.claim(["default"], "w", limit=100)  # idle: nothing ready
        Count.reset()
        t = Task(func="benchmarks.nats_requests:noop")
        await q.enqueue([t])
        _show("enqueue 1 task")
        [c] = await q.claim(["default"], "w", limit=100)
        _show("claim 1 task")
        res = TaskResult(
            task_id=t.id,
            status=TaskStatus.SUCCESS,
            payload=Payload("msgpack", b"\xc0"),
            attempts=1,
            finished_at=now(),
        )
        await q.finish([Completion(t.id, c.token)], [res], r, lease=30.0)
        _show("finish 1 task")
        await be.drop()  # type: ignore[attr-defined]


async def drain(url: str, n: int) -> None:
    oq = OmniQ(url)
    async with oq:
        for start in range(0, n, 1000):
            await oq.enqueue_many(
                [("benchmarks.nats_requests:noop", ())] * min(1000, n - start), queue="bench"
            )
        Count.reset()
        await oq.run_worker(queues=["bench"], concurrency=100, burst=True)
        req, waves = Count.reset()
        print(f"drain {n} tasks:  requests/task={req / n:.2f} round trips/task={waves / n:.2f}")
    async with open_storage(url) as be:
        await be.drop()  # type: ignore[attr-defined]


def main() -> None:
    base = os.environ.get("URL", "nats://127.0.0.1:4222")
    n = int(os.environ.get("N", "5000"))
    url = f"{base}?namespace=BENCHRQ{uuid.uuid4().hex[:10].upper()}"
    asyncio.run(single_ops(url))
    asyncio.run(drain(url, n))


if __name__ == "__main__":
    main()
