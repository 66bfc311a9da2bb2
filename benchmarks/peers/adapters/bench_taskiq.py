"""Taskiq adapter: taskiq-redis ListQueueBroker (BRPOP), no result backend,
``taskiq worker --workers 1 --max-async-tasks BENCH_IO_CONCURRENCY``."""

from __future__ import annotations

import asyncio
import time
from importlib.metadata import version as dist_version

from _common import IO_CONCURRENCY, REC, SLEEP, execv, redis_url, venv_bin
from taskiq_redis import ListQueueBroker

broker = ListQueueBroker(url=redis_url("taskiq"), queue_name="bench")
CHUNK = 200


@broker.task(task_name="noop")
async def noop() -> None:
    REC.done("noop")


@broker.task(task_name="lat")
async def lat(ts: float, seq: int) -> None:
    REC.latency(ts, seq)


@broker.task(task_name="sleep")
async def sleep() -> None:
    t0 = time.time()
    await asyncio.sleep(SLEEP)
    REC.done("sleep", t0)


TASKS = {"noop": noop, "lat": lat, "sleep": sleep}


def version() -> str:
    return f"{dist_version('taskiq')} (taskiq-redis {dist_version('taskiq-redis')})"


def reset() -> None:
    import redis

    redis.Redis.from_url(redis_url("taskiq")).flushdb()


class Client:
    async def open(self) -> None:
        await broker.startup()

    async def close(self) -> None:
        await broker.shutdown()

    async def send(self, kind: str, *args: object) -> None:
        await TASKS[kind].kiq(*args)

    async def send_many(self, kind: str, n: int) -> None:
        task = TASKS[kind]
        for start in range(0, n, CHUNK):
            await asyncio.gather(*(task.kiq() for _ in range(min(CHUNK, n - start))))


def worker(kind: str) -> None:
    execv(
        [
            venv_bin("taskiq"),
            "worker",
            "bench_taskiq:broker",
            "--workers",
            "1",
            "--max-async-tasks",
            str(IO_CONCURRENCY),
            "--log-level",
            "WARNING",
        ]
    )
