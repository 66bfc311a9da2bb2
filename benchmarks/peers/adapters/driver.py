"""Entry point run with a peer's own venv python: ``driver.py PEER COMMAND [options]``.

It imports the adapter ``bench_<peer>`` as a real module (so task names resolve the
same in the client and in the worker) and dispatches:

- ``version``: print ``{"name", "version"}``;
- ``reset``: empty the peer's storage (its Redis DB / PostgreSQL database);
- ``enqueue --kind noop|sleep --n N``: enqueue N tasks as fast as the peer allows,
  print ``{"seconds": ...}``;
- ``single --n N``: enqueue N no-ops one at a time, print ``{"seconds": ...}``;
- ``concurrent --n N --c C``: the same from C concurrent senders (coroutines or
  threads), print ``{"seconds": ...}``;
- ``latency --n N --gap S``: wait until the (already running) worker answers a
  warm-up task, then enqueue N timestamped tasks one at a time, S seconds apart;
- ``worker``: become the peer's worker (``os.execv`` of its real worker command, or
  its worker API), configured for ``BENCH_KIND``;
- ``embedded --n N``: enqueue and drain in this process (embedded backends).

Worker-side tasks report through ``_common.REC`` into files under ``BENCH_OUT``.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import inspect
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common


async def _maybe(value):  # type: ignore[no-untyped-def]
    if inspect.isawaitable(value):
        return await value
    return value


async def _enqueue(mod, kind: str, n: int) -> float:  # type: ignore[no-untyped-def]
    client = mod.Client()
    await _maybe(client.open())
    try:
        t0 = time.perf_counter()
        await _maybe(client.send_many(kind, n))
        return time.perf_counter() - t0
    finally:
        await _maybe(client.close())


async def _single(mod, n: int) -> float:  # type: ignore[no-untyped-def]
    """Enqueue ``n`` no-ops one at a time, each awaited before the next (what a web
    handler does per request); returns the wall time."""
    client = mod.Client()
    await _maybe(client.open())
    try:
        await _maybe(client.send("noop"))  # connect and warm up outside the timing
        t0 = time.perf_counter()
        for _ in range(n):
            await _maybe(client.send("noop"))
        return time.perf_counter() - t0
    finally:
        await _maybe(client.close())


async def _concurrent(mod, n: int, c: int) -> float:  # type: ignore[no-untyped-def]
    """Enqueue ``n`` no-ops from ``c`` concurrent senders (coroutines for an async client,
    threads for a blocking one), each enqueueing one task at a time, as a web server's
    handlers do; returns the wall time."""
    client = mod.Client()
    await _maybe(client.open())
    try:
        await _maybe(client.send("noop"))
        per = [n // c + (1 if i < n % c else 0) for i in range(c)]
        if inspect.iscoroutinefunction(client.send):

            async def sender(k: int) -> None:
                for _ in range(k):
                    await client.send("noop")

            t0 = time.perf_counter()
            await asyncio.gather(*(sender(k) for k in per))
            return time.perf_counter() - t0

        import threading

        def run(k: int) -> None:
            for _ in range(k):
                client.send("noop")

        threads = [threading.Thread(target=run, args=(k,)) for k in per]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return time.perf_counter() - t0
    finally:
        await _maybe(client.close())


async def _latency(mod, n: int, gap: float, out: Path, warmup: int) -> None:  # type: ignore[no-untyped-def]
    client = mod.Client()
    await _maybe(client.open())
    try:
        ready = out / "ready"
        deadline = time.monotonic() + 120
        while not ready.exists():
            if time.monotonic() > deadline:
                raise SystemExit("worker never answered the warm-up task")
            await _maybe(client.send("lat", time.time(), -1))
            t_wait = time.monotonic() + 0.5
            while not ready.exists() and time.monotonic() < t_wait:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
        for _ in range(warmup):
            await _maybe(client.send("lat", time.time(), -1))
            await asyncio.sleep(gap)
        (out / "warm").touch()
        await asyncio.sleep(0.5)
        for i in range(n):
            await _maybe(client.send("lat", time.time(), i))
            await asyncio.sleep(gap)
    finally:
        await _maybe(client.close())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("peer")
    ap.add_argument("command")
    ap.add_argument("--kind", default="noop")
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--gap", type=float, default=0.02)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--c", type=int, default=100, help="concurrent senders")
    ap.add_argument("--url", default="")
    args = ap.parse_args()
    mod = importlib.import_module(f"bench_{args.peer}")
    cmd = args.command
    if cmd == "version":
        print(json.dumps({"name": args.peer, "version": mod.version()}))
    elif cmd == "reset":
        asyncio.run(_maybe(mod.reset()))
    elif cmd == "enqueue":
        seconds = asyncio.run(_enqueue(mod, args.kind, args.n))
        print(json.dumps({"seconds": seconds}))
    elif cmd == "single":
        print(json.dumps({"seconds": asyncio.run(_single(mod, args.n))}))
    elif cmd == "concurrent":
        print(json.dumps({"seconds": asyncio.run(_concurrent(mod, args.n, args.c))}))
    elif cmd == "latency":
        out = Path(os.environ["BENCH_OUT"])
        asyncio.run(_latency(mod, args.n, args.gap, out, args.warmup))
    elif cmd == "worker":
        mod.worker(os.environ.get("BENCH_KIND", "noop"))
    elif cmd == "embedded":
        print(json.dumps(mod.embedded(args.url, args.n)))
    else:
        raise SystemExit(f"unknown command {cmd}")
    _common.flush()


if __name__ == "__main__":
    main()
