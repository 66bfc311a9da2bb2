"""arq adapter: one ``arq`` worker process, ``max_jobs`` = BENCH_IO_CONCURRENCY,
``poll_delay`` 0.01 s (arq polls its queue; the 0.5 s default would dominate W2)."""

from __future__ import annotations

import asyncio
import time
from importlib.metadata import version as dist_version

from _common import IO_CONCURRENCY, REC, REDIS_DB, SLEEP, execv, venv_bin
from arq import create_pool
from arq.connections import RedisSettings

REDIS = RedisSettings(host="127.0.0.1", port=6379, database=REDIS_DB["arq"])
CHUNK = 200


async def noop(ctx: dict) -> None:
    REC.done("noop")


async def lat(ctx: dict, ts: float, seq: int) -> None:
    REC.latency(ts, seq)


async def sleep(ctx: dict) -> None:
    t0 = time.time()
    await asyncio.sleep(SLEEP)
    REC.done("sleep", t0)


class WorkerSettings:
    functions = [noop, lat, sleep]
    redis_settings = REDIS
    max_jobs = IO_CONCURRENCY
    poll_delay = 0.01
    handle_signals = True


def version() -> str:
    return dist_version("arq")


async def reset() -> None:
    pool = await create_pool(REDIS)
    await pool.flushdb()
    await pool.aclose()


class Client:
    async def open(self) -> None:
        self.pool = await create_pool(REDIS)

    async def close(self) -> None:
        await self.pool.aclose()

    async def send(self, kind: str, *args: object) -> None:
        await self.pool.enqueue_job(kind, *args)

    async def send_many(self, kind: str, n: int) -> None:
        for start in range(0, n, CHUNK):
            await asyncio.gather(
                *(self.pool.enqueue_job(kind) for _ in range(min(CHUNK, n - start)))
            )


def worker(kind: str) -> None:
    execv([venv_bin("arq"), "bench_arq.WorkerSettings"])
