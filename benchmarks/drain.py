"""In-process drain driver used for profiling (docs/performance.md, docs/dev/optimisation-log.md).

Enqueues N no-op tasks with ``enqueue_many`` (1,000 per call), then drains them with
``run_worker(burst=True)`` (concurrency 100) in the same process, after a 300-task
warm-up so imports are not counted. Prints the enqueue rate, the drain rate (first task
start to last task end, as the peer harness times it), the worker's CPU time per task
(load-independent, good for steering on a shared machine) and the end-to-end rate.

    URL=memory://                N=20000 uv run python -m benchmarks.drain
    URL=redis://127.0.0.1:6379/5 N=20000 uv run python -m benchmarks.drain
    uv run --with py-spy py-spy record -r 500 -f raw -o x.raw -- python -m benchmarks.drain
"""

from __future__ import annotations

import asyncio
import importlib
import os
import time


class Seen:
    done = 0
    t_first = 0.0
    t_last = 0.0


async def noop() -> None:
    Seen.done += 1
    if Seen.done == 1:
        Seen.t_first = time.perf_counter()
    Seen.t_last = time.perf_counter()


async def _main(url: str, n: int) -> None:
    from omniq.core import OmniQ

    # The worker imports this module by path; count in that copy, not in __main__.
    drain = importlib.import_module("benchmarks.drain")

    item = ("benchmarks.drain:noop", ())
    async with OmniQ(url) as oq:
        await oq.enqueue_many([item] * 300, queue="bench")
        await oq.run_worker(queues=["bench"], concurrency=100, burst=True)
        drain.Seen.done = 0
        t0, c0 = time.perf_counter(), time.process_time()
        for start in range(0, n, 1000):
            await oq.enqueue_many([item] * min(1000, n - start), queue="bench")
        t1, c1 = time.perf_counter(), time.process_time()
        await oq.run_worker(queues=["bench"], concurrency=100, burst=True)
        c2 = time.process_time()
    seen = drain.Seen
    dt = seen.t_last - seen.t_first
    print(
        f"{url} N={n}: enqueue {n / (t1 - t0):,.0f}/s ({1e6 * (c1 - c0) / n:.1f} us CPU/task) | "
        f"drain {n / dt:,.0f}/s (worker {1e6 * (c2 - c1) / n:.1f} us CPU/task) | "
        f"e2e {n / (t1 - t0 + dt):,.0f}/s | ran {seen.done}"
    )


if __name__ == "__main__":
    asyncio.run(_main(os.environ.get("URL", "memory://"), int(os.environ.get("N", "20000"))))
