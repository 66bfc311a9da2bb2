# ruff: noqa: ASYNC230, ASYNC240  (a benchmark: small local files, timing outside)
"""Flow-limit accuracy across worker processes (docs/performance.md, "Flow limits").

Two runs per store URL, each with 4 worker processes (``python -m benchmarks.limits
worker URL CONCURRENCY``) sharing the store; every task appends its start (and end)
time to a file, and the figures come from those stamps:

- rate: N tasks (default 2,000) with ``rate_limit="50/s"``, worker concurrency 50:
  the most starts in any 1-second window (sliding over every start) and the long-run
  rate (N - 1 starts over the span from the first start to the last);
- cap: M tasks (default 400) of 50 ms with ``max_concurrency=3``, worker concurrency
  50: the most running at once, and the share of the time with exactly 3 running while
  work is pending (from the first start to the last start: after it nothing is left to
  fill a freed slot); the share up to the last end is printed beside it.

    URL=redis://127.0.0.1:6379/5 uv run python -m benchmarks.limits
    URL=postgresql://127.0.0.1:5432/test uv run python -m benchmarks.limits

Each run stores its tasks under a namespace of its own (a Redis key prefix, a
PostgreSQL schema, a NATS namespace), dropped at its end; ``RUNS=rate`` or
``RUNS=cap`` runs one of them.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROCS = 4
RATE = 50


def started(path: str) -> None:
    """A rate-run task: append its start time (read first: opening the file may
    yield the GIL to other threads)."""
    start = time.time()
    with open(path, "a") as f:
        f.write(f"{start}\n")


async def spanned(path: str, seconds: float) -> None:
    """A cap-run task: append its start and end time."""
    start = time.time()
    await asyncio.sleep(seconds)
    with open(path, "a") as f:
        f.write(f"{start} {time.time()}\n")


def _worker(url: str, concurrency: int) -> None:
    from omniq.core import OmniQ

    with OmniQ(url, lease_seconds=10.0) as oq:
        print("ready", flush=True)
        stats = oq.run_worker_sync(queues=["bench"], concurrency=concurrency)
        print(f"late {stats.late_starts} released {stats.released}", flush=True)


def _spawn(url: str, concurrency: int) -> list[subprocess.Popen[str]]:
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "benchmarks.limits", "worker", url, str(concurrency)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(PROCS)
    ]
    for p in procs:
        assert p.stdout is not None and p.stdout.readline().strip() == "ready"
    return procs


def _stop(procs: list[subprocess.Popen[str]]) -> None:
    for p in procs:
        p.send_signal(signal.SIGTERM)
    late = released = 0
    for p in procs:
        try:
            out, _ = p.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()
            continue
        for line in out.splitlines():
            if line.startswith("late "):
                _, a, _, b = line.split()
                late, released = late + int(a), released + int(b)
    print(f"  (rate-limited tasks released for a late start: {late}; releases: {released})")


def _fresh(url: str) -> str:
    """``url`` with a namespace of its own (dropped at the end of the run)."""
    tag = os.urandom(4).hex()
    sep = "&" if "?" in url else "?"
    if url.startswith("redis"):
        return f"{url}{sep}prefix=bench-limits-{tag}:"
    if url.startswith("postgres"):
        return f"{url}{sep}schema=bench_limits_{tag}"
    if url.startswith("nats"):
        return f"{url}{sep}namespace=BL{tag.upper()}"
    return url


async def _drop(url: str) -> None:
    from omniq.storage import open_storage

    if url.startswith(("redis", "postgres", "nats")):
        async with open_storage(url) as store:
            await store.drop()  # type: ignore[attr-defined]


async def _drain(n: int, path: Path, deadline: float) -> None:
    while True:
        lines = path.read_text().count("\n") if path.exists() else 0
        if lines >= n:
            return
        if time.monotonic() > deadline:
            raise SystemExit(f"only {lines} of {n} tasks ran in time")
        await asyncio.sleep(0.2)


async def rate_run(url: str, n: int, folder: Path) -> tuple[int, float]:
    from omniq.core import OmniQ

    path = folder / "starts"
    async with OmniQ(url) as oq:
        tasks = [
            oq.build(started, (str(path),), queue="bench", rate_limit=f"{RATE}/s") for _ in range(n)
        ]
        for i in range(0, n, 500):
            await oq.enqueue_many(tasks[i : i + 500])
        procs = _spawn(url, 50)
        try:
            await _drain(n, path, time.monotonic() + n / RATE * 3 + 60)
        finally:
            _stop(procs)
    starts = sorted(float(x) for x in path.read_text().split())
    most, j, at = 0, 0, 0.0
    for i, s in enumerate(starts):
        while starts[j] <= s - 1.0:
            j += 1
        if i - j + 1 > most:
            most, at = i - j + 1, s - starts[0]
    print(f"  (the fullest 1 s window ends {at:.2f} s after the first start)")
    rate = (len(starts) - 1) / (starts[-1] - starts[0])
    return most, rate


async def cap_run(url: str, m: int, folder: Path) -> tuple[int, float, float]:
    from omniq.core import OmniQ

    path = folder / "spans"
    async with OmniQ(url) as oq:
        tasks = [
            oq.build(spanned, (str(path), 0.05), queue="bench", max_concurrency=3) for _ in range(m)
        ]
        await oq.enqueue_many(tasks)
        procs = _spawn(url, 50)
        try:
            await _drain(m, path, time.monotonic() + m * 0.05 + 120)
        finally:
            _stop(procs)
    spans = [tuple(map(float, x.split())) for x in path.read_text().splitlines()]
    edges = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    last_start = max(s for s, _ in spans)
    most = cur = 0
    at3 = 0.0
    at3_pending = 0.0  # the part of at3 before the last start, while work was pending
    prev = edges[0][0]
    gaps: list[float] = []
    short_since: float | None = None  # when the running count last fell below 3
    for t, d in edges:
        if cur == 3:
            at3 += t - prev
            at3_pending += max(0.0, min(t, last_start) - prev)
        prev = t
        was, cur = cur, cur + d
        most = max(most, cur)
        if was >= 3 > cur:
            short_since = t
        elif was < 3 <= cur and short_since is not None:
            gaps.append(t - short_since)
            short_since = None
    total = edges[-1][0] - edges[0][0]
    _print_gaps(gaps, total)
    pending = max(last_start - edges[0][0], 1e-9)
    return most, at3_pending / pending, at3 / total


def _print_gaps(gaps: list[float], total: float) -> None:
    """The hand-off gaps: each interval with fewer than 3 running, after the first
    time 3 ran, that another start closed (the tail after the last start is not one).
    """
    if not gaps:
        print("  (no hand-off gaps)")
        return
    ms = sorted(g * 1000 for g in gaps)
    p90 = ms[min(len(ms) - 1, int(len(ms) * 0.9))]
    print(
        f"  (hand-off gaps: {len(ms)}, median {ms[len(ms) // 2]:.1f} ms, p90 {p90:.1f} ms, "
        f"max {ms[-1]:.1f} ms, {sum(ms) / 1000 / total:.1%} of the span)"
    )


async def main() -> None:
    base = os.environ.get("URL", "redis://127.0.0.1:6379/5")
    n = int(os.environ.get("N", "2000"))
    m = int(os.environ.get("M", "400"))
    runs = os.environ.get("RUNS", "rate,cap").split(",")
    if "rate" in runs:
        url = _fresh(base)
        try:
            with tempfile.TemporaryDirectory() as d:
                most, rate = await rate_run(url, n, Path(d))
        finally:
            await _drop(url)
        print(
            f"rate_limit={RATE}/s, {n} tasks, {PROCS} processes: max starts in a 1 s window "
            f"{most}, long-run rate {rate:.1f}/s ({rate / RATE:.1%} of {RATE}/s)"
        )
    if "cap" in runs:
        url = _fresh(base)
        try:
            with tempfile.TemporaryDirectory() as d:
                most, share, share_all = await cap_run(url, m, Path(d))
        finally:
            await _drop(url)
        print(
            f"max_concurrency=3, {m} x 50 ms tasks, {PROCS} processes x concurrency 50: "
            f"max running {most}, exactly 3 running {share:.1%} of the time while work "
            f"was pending (first start to last start; {share_all:.1%} up to the last end)"
        )


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "worker":
        _worker(sys.argv[2], int(sys.argv[3]))
    else:  # through the imported module, so the task functions have importable paths
        from benchmarks import limits  # noqa: PLW0406

        asyncio.run(limits.main())
