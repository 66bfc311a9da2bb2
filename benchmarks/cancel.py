"""Cancel -> task stopped latency per backend, and the progress overhead on a drain.

Cancel: a worker process (in-process for ``memory://``) runs one held async task at a
time; the driver waits until it started, takes the time, calls ``oq.cancel`` and waits
until the task recorded the CancelledError it got (its own timestamp, same machine
clock). Repeated ``N`` times (default 100) per backend; prints p50/p90/p99/max.

Progress: drains ``N`` no-op tasks (W1-style, concurrency 100, in-process) with the
worker registry off, with it on (the default), and with it on and one
``current_task().set_progress`` call per task; prints each one's best drain rate and
median CPU time per task (the worker runs in the benchmark's process; the CPU time is
steadier than the rate on a shared machine).

    uv run python -m benchmarks.cancel                  # every backend that answers
    URLS=redis://127.0.0.1:6379/5 N=100 uv run python -m benchmarks.cancel
    N=20000 ROUNDS=5 uv run python -m benchmarks.cancel progress
    URL=redis://127.0.0.1:6379/5 N=20000 uv run python -m benchmarks.cancel progress
"""

# ruff: noqa: ASYNC220, ASYNC240 - files are the cross-process channel of this benchmark
from __future__ import annotations

import asyncio
import importlib
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from omniq.workers import current_task

DEFAULT_URLS = [
    "memory://",
    "sqlite:///{tmp}/cancel.db",
    "file://{tmp}/store",
    "redis://127.0.0.1:6379/0?prefix=bench-cancel-{uid}:",
    "postgresql://postgres@127.0.0.1:5432/test?schema=bench_cancel_{uid}",
    "nats://127.0.0.1:4222?namespace=BENCH_CANCEL_{uid}",
]


async def held(path: str) -> None:
    """Mark started, then wait; on CancelledError record the time it arrived."""
    Path(path + ".started").touch()
    try:
        await asyncio.sleep(3600)
    except asyncio.CancelledError:
        at = time.time()
        Path(path + ".tmp").write_text(repr(at))
        os.replace(path + ".tmp", path + ".stopped")  # whole, or not there
        raise


async def _wait_file(path: Path, within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    while not path.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} did not appear")
        await asyncio.sleep(0.0005)


def _worker(url: str) -> None:
    from omniq.core import OmniQ

    with OmniQ(url, lease_seconds=30.0) as oq:
        oq.run_worker_sync(queues=["bench-cancel"], concurrency=4)


async def _measure(url: str, n: int, tmp: Path) -> list[float]:
    from omniq.core import OmniQ

    lat: list[float] = []
    proc = None
    async with OmniQ(url, lease_seconds=30.0) as oq:
        handle = None
        if url.startswith("memory://"):
            handle = oq.worker(queues=["bench-cancel"], concurrency=4)
            await handle.start()
        else:
            env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
            proc = subprocess.Popen(
                [sys.executable, "-m", "benchmarks.cancel", "worker", url], env=env
            )
        try:
            for i in range(n):
                base = tmp / f"t{i}"
                task = await oq.enqueue(
                    "benchmarks.cancel:held", (str(base),), queue="bench-cancel"
                )
                await _wait_file(Path(str(base) + ".started"))
                t0 = time.time()
                await oq.cancel(task.id)
                stopped = Path(str(base) + ".stopped")
                await _wait_file(stopped)
                lat.append(float(stopped.read_text()) - t0)
        finally:
            if handle is not None:
                await handle.stop()
            if proc is not None:
                proc.terminate()
                proc.wait(30)
    return lat


def _pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(p / 100 * (len(xs) - 1)))]


async def _cancel_table(urls: list[str], n: int) -> None:
    print(f"cancel -> task stopped, {n} cancels each (ms)")
    print(f"{'backend':<12} {'p50':>8} {'p90':>8} {'p99':>8} {'max':>8}")
    for template in urls:
        with tempfile.TemporaryDirectory() as d:
            url = template.format(tmp=d, uid=uuid.uuid4().hex[:8])
            name = url.split(":", 1)[0]
            try:
                lat = await _measure(url, n, Path(d))
            except Exception as exc:  # an engine that is not running: say so, go on
                print(f"{name:<12} skipped: {exc!r}")
                continue
            finally:
                await _drop(url)
            ms = [x * 1000 for x in lat]
            print(
                f"{name:<12} {statistics.median(ms):8.1f} {_pct(ms, 90):8.1f} "
                f"{_pct(ms, 99):8.1f} {max(ms):8.1f}"
            )


async def _drop(url: str) -> None:
    from omniq.storage import open_storage

    if not url.startswith(("redis", "postgres", "nats")):
        return
    try:
        async with open_storage(url) as b:
            await b.drop()  # type: ignore[attr-defined]
    except Exception:
        pass


class Seen:
    done = 0
    t_first = 0.0
    t_last = 0.0


async def noop() -> None:
    Seen.done += 1
    if Seen.done == 1:
        Seen.t_first = time.perf_counter()
    Seen.t_last = time.perf_counter()


async def noop_progress() -> None:
    current_task().set_progress(1, 1)
    Seen.done += 1
    if Seen.done == 1:
        Seen.t_first = time.perf_counter()
    Seen.t_last = time.perf_counter()


async def _drain(url: str, n: int, fn: str, *, registry: bool = True) -> tuple[float, float]:
    """Drain rate (first to last start) and the process's CPU µs per task (the worker
    runs in this process)."""
    from omniq.core import OmniQ

    me = importlib.import_module("benchmarks.cancel")
    item = (fn, ())
    async with OmniQ(url) as oq:
        await oq.enqueue_many([item] * 300, queue="bench")
        await oq.run_worker(queues=["bench"], concurrency=100, burst=True, worker_registry=registry)
        me.Seen.done = 0
        for start in range(0, n, 1000):
            await oq.enqueue_many([item] * min(1000, n - start), queue="bench")
        r0 = resource.getrusage(resource.RUSAGE_SELF)
        await oq.run_worker(queues=["bench"], concurrency=100, burst=True, worker_registry=registry)
        r1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (r1.ru_utime + r1.ru_stime) - (r0.ru_utime + r0.ru_stime)
    return n / (me.Seen.t_last - me.Seen.t_first), cpu / n * 1e6


async def _progress_table(url: str, n: int, rounds: int) -> None:
    variants = [
        ("benchmarks.cancel:noop", False),
        ("benchmarks.cancel:noop", True),
        ("benchmarks.cancel:noop_progress", True),
    ]
    rates: list[list[float]] = [[], [], []]
    cpus: list[list[float]] = [[], [], []]
    for r in range(rounds):  # interleaved, each round starting with the next one
        for k in range(3):
            i = (r + k) % 3
            fn, registry = variants[i]
            rate, cpu = await _drain(url, n, fn, registry=registry)
            rates[i].append(rate)
            cpus[i].append(cpu)
    print(f"W1 drain {url} N={n}, {rounds} rounds: best rate, median worker CPU per task")
    base_rate, base_cpu = max(rates[0]), statistics.median(cpus[0])
    names = ("registry off", "registry on (default)", "registry on, set_progress per task")
    for name, rs, cs in zip(names, rates, cpus, strict=True):
        rate, cpu = max(rs), statistics.median(cs)
        print(
            f"  {name:36} {rate:>9,.0f}/s ({100 * (rate - base_rate) / base_rate:+5.1f}%)"
            f"  {cpu:6.1f} µs ({100 * (cpu - base_cpu) / base_cpu:+5.1f}%)"
        )


if __name__ == "__main__":
    args = sys.argv[1:]
    if args[:1] == ["worker"]:
        _worker(args[1])
    elif args[:1] == ["progress"]:
        url = os.environ.get("URL", "memory://")
        n = int(os.environ.get("N", "20000"))
        asyncio.run(_progress_table(url, n, int(os.environ.get("ROUNDS", "5"))))
    else:
        urls = os.environ["URLS"].split(",") if os.environ.get("URLS") else DEFAULT_URLS
        asyncio.run(_cancel_table(urls, int(os.environ.get("N", "100"))))
