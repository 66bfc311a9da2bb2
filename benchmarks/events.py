"""Caller's cost of event logging on the task hot path (target: under 5 us per event).

Measures what a task pays per event: ``log(event)`` with a prebuilt event, and a
builder (``complete(task, ...)``, which also builds the event), for an enabled logger
writing to SQLite in the background and for a disabled one. Calls are made from the
event loop (AsyncEventLogger, in chunks with a checkpoint between them so the writer
runs) and from a plain thread (EventLogger). Also reports end-to-end throughput
(events durably in SQLite per second, flush included).

    uv run python benchmarks/events.py [--events 200000]
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import anyio
import anyio.lowlevel

from omniq.events import AsyncEventLogger, EventLogger
from omniq.models import EventType, Task, TaskEvent
from omniq.storage import open_storage

CHUNK = 1000


def timed_calls(n: int, call: Callable[[int], None]) -> float:
    """Seconds spent in ``n`` calls of ``call(i)``, loop overhead included."""
    t0 = time.perf_counter()
    for i in range(n):
        call(i)
    return time.perf_counter() - t0


def loop_overhead(n: int) -> float:
    return timed_calls(n, lambda i: None)


async def bench_async(url: str | None, n: int, builder: bool) -> tuple[float, int, float]:
    """In-loop calls; returns (ns per event, events dropped, end-to-end events/s)."""
    task = Task(func="app:work")
    events = [TaskEvent(task_id=f"t{i}", type=EventType.COMPLETE) for i in range(n)]
    logger = AsyncEventLogger(url, buffer_size=n, batch_size=2000)
    async with logger:
        if builder:

            def call(i: int) -> None:
                logger.complete(task, "w1", 1, 0.001)
        else:

            def call(i: int) -> None:
                logger.log(events[i])

        spent = 0.0
        t_start = time.perf_counter()
        for start in range(0, n, CHUNK):
            t0 = time.perf_counter()
            for i in range(start, min(n, start + CHUNK)):
                call(i)
            spent += time.perf_counter() - t0
            await anyio.lowlevel.checkpoint()  # let the background writer run
        await logger.flush()
        wall = time.perf_counter() - t_start
        stats = logger.stats
    return spent / n * 1e9, stats.dropped, (stats.written / wall if stats.written else 0.0)


def bench_thread(url: str | None, n: int, builder: bool) -> tuple[float, int]:
    """Calls from a plain thread through the sync wrapper; returns (ns/event, dropped)."""
    task = Task(func="app:work")
    events = [TaskEvent(task_id=f"t{i}", type=EventType.COMPLETE) for i in range(n)]
    result: list[float] = []
    with EventLogger(url, buffer_size=n, batch_size=2000) as logger:

        def run() -> None:
            if builder:
                result.append(timed_calls(n, lambda i: logger.complete(task, "w1", 1, 0.001)))
            else:
                result.append(timed_calls(n, lambda i: logger.log(events[i])))

        th = threading.Thread(target=run)
        th.start()
        th.join()
        logger.flush()
        dropped = logger.stats.dropped
    return result[0] / n * 1e9, dropped


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=200_000)
    args = parser.parse_args()
    n = args.events
    base = loop_overhead(n) / n * 1e9

    rows: list[tuple[str, str, str, float, int, str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for builder in (False, True):
            what = "complete(task, ...)" if builder else "log(event)"
            for label, enabled in (("enabled", True), ("disabled", False)):
                url = f"sqlite:///{Path(tmp) / f'ev-{builder}-{label}.db'}" if enabled else None
                ns, dropped, rate = anyio.run(bench_async, url, n, builder)
                rows.append(("loop", what, label, ns, dropped, f"{rate:,.0f}" if rate else "-"))
                url2 = f"sqlite:///{Path(tmp) / f'th-{builder}-{label}.db'}" if enabled else None
                ns, dropped = bench_thread(url2, n, builder)
                rows.append(("thread", what, label, ns, dropped, "-"))

        # sanity: the enabled runs really stored the events
        async def stored() -> int:
            async with open_storage(f"sqlite:///{Path(tmp) / 'ev-False-enabled.db'}") as b:
                assert b.events is not None
                return await b.events.count()

        kept = anyio.run(stored)

    print(f"events per run: {n:,}   (python loop overhead ~{base:.0f} ns/call, included)")
    print(
        f"{'caller':<7} {'call':<20} {'logger':<9} {'ns/event':>9} {'us/event':>9} "
        f"{'dropped':>8} {'stored/s (e2e)':>15}"
    )
    for caller, what, label, ns, dropped, rate in rows:
        print(
            f"{caller:<7} {what:<20} {label:<9} {ns:>9.0f} {ns / 1000:>9.3f} "
            f"{dropped:>8} {rate:>15}"
        )
    print(f"sqlite check: {kept:,} of {n:,} events stored by the enabled log(event) loop run")


if __name__ == "__main__":
    main()
