"""Client CPU and wall time per ``await oq.enqueue(...)`` through the facade, one at a
time (``single``) or from C concurrent coroutines (``concurrent``), as the peer
harness's W6 sends them; ``PROF=1`` adds a cProfile of the timed loop.

    URL=redis://127.0.0.1:6399/0 N=5000 uv run python -m benchmarks.enqueue_cpu single
    URL=redis://127.0.0.1:6399/0 N=20000 C=100 uv run python -m benchmarks.enqueue_cpu concurrent

CPU per task (``getrusage``) is steadier than the wall rate on a loaded machine. The
tasks stay in queue ``bench`` of the store (use a scratch database).
"""

from __future__ import annotations

import asyncio
import cProfile
import os
import pstats
import resource
import sys
import time

from omniq.core import OmniQ

FUNC = "benchmarks.drain:noop"


async def main(mode: str) -> None:
    url = os.environ.get("URL", "redis://127.0.0.1:6399/0")
    n = int(os.environ.get("N", "5000"))
    c = int(os.environ.get("C", "100"))
    async with OmniQ(url) as oq:
        await oq.enqueue(FUNC, (), queue="bench")  # connect and warm up
        prof = cProfile.Profile() if os.environ.get("PROF") else None
        r0 = resource.getrusage(resource.RUSAGE_SELF)
        t0 = time.perf_counter()
        if prof is not None:
            prof.enable()
        if mode == "single":
            for _ in range(n):
                await oq.enqueue(FUNC, (), queue="bench")
        else:

            async def sender(k: int) -> None:
                for _ in range(k):
                    await oq.enqueue(FUNC, (), queue="bench")

            await asyncio.gather(*(sender(n // c) for _ in range(c)))
            n = n // c * c
        if prof is not None:
            prof.disable()
        dt = time.perf_counter() - t0
        r1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (r1.ru_utime + r1.ru_stime) - (r0.ru_utime + r0.ru_stime)
    print(
        f"{mode}: {n / dt:,.0f}/s  wall µs/task {dt / n * 1e6:.1f}  cpu µs/task {cpu / n * 1e6:.1f}"
    )
    if prof is not None:
        pstats.Stats(prof).sort_stats("tottime").print_stats(30)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "single"))
