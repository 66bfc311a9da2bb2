"""Celery adapter: Redis broker, no result backend, one worker process.

noop/latency: ``--pool=solo`` with a deep prefetch (fastest single-process setting);
sleep: ``--pool=threads`` with BENCH_IO_CONCURRENCY threads.
"""

from __future__ import annotations

import time

import celery
from _common import IO_CONCURRENCY, REC, SLEEP, execv, redis_url, venv_bin
from celery import Celery

app = Celery("bench_celery", broker=redis_url("celery"))
app.conf.update(
    task_ignore_result=True,
    task_default_queue="bench",
    worker_prefetch_multiplier=64,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)


@app.task(name="noop")
def noop() -> None:
    REC.done("noop")


@app.task(name="lat")
def lat(ts: float, seq: int) -> None:
    REC.latency(ts, seq)


@app.task(name="sleep")
def sleep() -> None:
    t0 = time.time()
    time.sleep(SLEEP)
    REC.done("sleep", t0)


TASKS = {"noop": noop, "lat": lat, "sleep": sleep}


def version() -> str:
    return celery.__version__


def reset() -> None:
    import redis

    redis.Redis.from_url(redis_url("celery")).flushdb()


class Client:
    def open(self) -> None:
        pass

    def close(self) -> None:
        pass

    def send(self, kind: str, *args: object) -> None:
        TASKS[kind].apply_async(args)

    def send_many(self, kind: str, n: int) -> None:
        task = TASKS[kind]
        with app.producer_or_acquire() as producer:
            for _ in range(n):
                task.apply_async(producer=producer)


def worker(kind: str) -> None:
    pool = (
        ["--pool=threads", f"--concurrency={IO_CONCURRENCY}"]
        if kind == "sleep"
        else ["--pool=solo"]
    )
    execv(
        [
            venv_bin("celery"),
            "-A",
            "bench_celery",
            "worker",
            "-Q",
            "bench",
            "--loglevel=WARNING",
            "--without-heartbeat",
            "--without-gossip",
            "--without-mingle",
            *pool,
        ]
    )
