"""SAQ adapter: Redis queue, ``saq bench_saq.settings --workers 1`` with
``concurrency`` = BENCH_IO_CONCURRENCY."""

from __future__ import annotations

import asyncio
import time
from importlib.metadata import version as dist_version

from _common import IO_CONCURRENCY, REC, SLEEP, execv, redis_url, venv_bin
from saq import Queue

queue = Queue.from_url(redis_url("saq"), name="bench")
CHUNK = 200


async def noop(ctx: dict) -> None:
    REC.done("noop")


async def lat(ctx: dict, *, ts: float, seq: int) -> None:
    REC.latency(ts, seq)


async def sleep(ctx: dict) -> None:
    t0 = time.time()
    await asyncio.sleep(SLEEP)
    REC.done("sleep", t0)


settings = {
    "queue": queue,
    "functions": [noop, lat, sleep],
    "concurrency": IO_CONCURRENCY,
}


def version() -> str:
    return dist_version("saq")


def reset() -> None:
    import redis

    redis.Redis.from_url(redis_url("saq")).flushdb()


class Client:
    async def open(self) -> None:
        await queue.connect()

    async def close(self) -> None:
        await queue.disconnect()

    async def send(self, kind: str, *args: object) -> None:
        if kind == "lat":
            await queue.enqueue("lat", ts=args[0], seq=args[1])
        else:
            await queue.enqueue(kind)

    async def send_many(self, kind: str, n: int) -> None:
        for start in range(0, n, CHUNK):
            await asyncio.gather(*(queue.enqueue(kind) for _ in range(min(CHUNK, n - start))))


def worker(kind: str) -> None:
    execv([venv_bin("saq"), "bench_saq.settings", "--workers", "1", "--quiet"])
