"""In-process drain driver used for profiling (docs/performance.md, docs/dev/optimisation-log.md).

Enqueues N no-op tasks with ``enqueue_many`` (1,000 per call), then drains them with
``run_worker(burst=True)`` (concurrency 100, or ``CONCURRENCY``) in the same process,
after a 300-task warm-up so imports are not counted. Prints the enqueue rate, the drain
rate (first task start to last task end, as the peer harness times it), the worker's
CPU time per task (load-independent, good for steering on a shared machine) and the
end-to-end rate.

    URL=memory://                N=20000 uv run python -m benchmarks.drain
    URL=redis://127.0.0.1:6379/5 N=20000 uv run python -m benchmarks.drain
    URL=redis://127.0.0.1:6379/5 N=20000 PROCESSES=2 uv run python -m benchmarks.drain

With ``PROCESSES=P`` (> 1) the drain runs ``run_worker(processes=P)``: P worker
processes, concurrency 100 each. Each records its first start and last end
(``time.monotonic``, one clock for every process on Linux) in a file when it exits; the
drain rate is N over the span from the earliest start to the latest end, as above. No
warm-up runs in that mode: the children are fresh interpreters (their imports happen
before their first task starts, outside the span). Worker CPU is then not reported.

On Redis both modes also print the Redis server's CPU per task over the drain (``INFO
cpu``, so use a server nobody else loads): one Redis serves every worker process, so
the drain rate of any number of processes is at most 1 / (server CPU per task), and on
a machine whose cores the server shares with the workers, at most cores / (worker CPU
+ server CPU per task).
    uv run --with py-spy py-spy record -r 500 -f raw -o x.raw -- python -m benchmarks.drain
"""

from __future__ import annotations

import asyncio
import atexit
import importlib
import os
import tempfile
import time
from pathlib import Path


class Seen:
    done = 0
    t_first = 0.0
    t_last = 0.0


async def noop() -> None:
    Seen.done += 1
    if Seen.done == 1:
        Seen.t_first = time.perf_counter()
    Seen.t_last = time.perf_counter()


STAMPS = "BENCH_DRAIN_STAMPS"
CONCURRENCY = int(os.environ.get("CONCURRENCY", "100"))
"""The drain worker's concurrency (``run_worker(concurrency=...)``)."""


def _write_stamps() -> None:
    folder = os.environ.get(STAMPS)
    if folder and Seen.done:
        Path(folder, str(os.getpid())).write_text(f"{Seen.done} {Seen.t_first} {Seen.t_last}")


async def noop_stamped() -> None:
    """``noop`` timed with ``time.monotonic``, written to $BENCH_DRAIN_STAMPS at exit."""
    Seen.done += 1
    if Seen.done == 1:
        Seen.t_first = time.monotonic()
        atexit.register(_write_stamps)
    Seen.t_last = time.monotonic()


async def _store_cpu(url: str) -> float | None:
    """The Redis server's CPU seconds so far (``INFO cpu``); None for other stores."""
    if not url.startswith("redis"):
        return None
    import redis.asyncio as aredis

    client = aredis.Redis.from_url(url)
    try:
        info = await client.info("cpu")
    finally:
        await client.aclose()
    return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])


def _store_note(n: int, before: float | None, after: float | None) -> str:
    if before is None or after is None:
        return ""
    return f" (Redis server {1e6 * (after - before) / n:.1f} us CPU/task)"


def _read_stamps(folder: str) -> list[list[str]]:
    return [p.read_text().split() for p in Path(folder).iterdir()]


async def _main_processes(url: str, n: int, processes: int) -> None:
    from omniq.core import OmniQ

    item = ("benchmarks.drain:noop_stamped", ())
    with tempfile.TemporaryDirectory() as folder:
        os.environ[STAMPS] = folder  # the worker processes inherit it
        async with OmniQ(url) as oq:
            t0 = time.perf_counter()
            for start in range(0, n, 1000):
                await oq.enqueue_many([item] * min(1000, n - start), queue="bench")
            t1 = time.perf_counter()
            s0 = await _store_cpu(url)
            await oq.run_worker(
                queues=["bench"], concurrency=CONCURRENCY, burst=True, processes=processes
            )
            s1 = await _store_cpu(url)
        stamps = _read_stamps(folder)
    ran = sum(int(s[0]) for s in stamps)
    dt = max(float(s[2]) for s in stamps) - min(float(s[1]) for s in stamps)
    print(
        f"{url} N={n} processes={processes}: enqueue {n / (t1 - t0):,.0f}/s | "
        f"drain {n / dt:,.0f}/s{_store_note(n, s0, s1)} | "
        f"per process {sorted(int(s[0]) for s in stamps)} | ran {ran}"
    )


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
        s0 = await _store_cpu(url)
        await oq.run_worker(queues=["bench"], concurrency=CONCURRENCY, burst=True)
        c2 = time.process_time()
        s1 = await _store_cpu(url)
    seen = drain.Seen
    dt = seen.t_last - seen.t_first
    print(
        f"{url} N={n}: enqueue {n / (t1 - t0):,.0f}/s ({1e6 * (c1 - c0) / n:.1f} us CPU/task) | "
        f"drain {n / dt:,.0f}/s (worker {1e6 * (c2 - c1) / n:.1f} us CPU/task)"
        f"{_store_note(n, s0, s1)} | "
        f"e2e {n / (t1 - t0 + dt):,.0f}/s | ran {seen.done}"
    )


if __name__ == "__main__":
    _url, _n = os.environ.get("URL", "memory://"), int(os.environ.get("N", "20000"))
    _processes = int(os.environ.get("PROCESSES", "1"))
    if _processes > 1:
        asyncio.run(_main_processes(_url, _n, _processes))
    else:
        asyncio.run(_main(_url, _n))
