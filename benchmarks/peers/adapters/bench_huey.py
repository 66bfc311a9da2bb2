"""Huey adapter: RedisHuey (blocking BRPOP), ``huey_consumer -k thread``.

noop/latency: 8 worker threads; sleep: BENCH_IO_CONCURRENCY threads. ``-d 0.01``
shortens the idle poll so an empty queue is re-checked quickly.
"""

from __future__ import annotations

import time

import huey as huey_pkg
from _common import IO_CONCURRENCY, REC, REDIS_DB, SLEEP, execv, venv_bin
from huey import RedisHuey

huey = RedisHuey("bench", host="127.0.0.1", port=6379, db=REDIS_DB["huey"], blocking=True)


@huey.task()
def noop() -> None:
    REC.done("noop")


@huey.task()
def lat(ts: float, seq: int) -> None:
    REC.latency(ts, seq)


@huey.task()
def sleep() -> None:
    t0 = time.time()
    time.sleep(SLEEP)
    REC.done("sleep", t0)


TASKS = {"noop": noop, "lat": lat, "sleep": sleep}


def version() -> str:
    return huey_pkg.__version__


def reset() -> None:
    huey.storage.conn.flushdb()


class Client:
    def open(self) -> None:
        pass

    def close(self) -> None:
        pass

    def send(self, kind: str, *args: object) -> None:
        TASKS[kind](*args)

    def send_many(self, kind: str, n: int) -> None:
        task = TASKS[kind]
        for _ in range(n):
            task()


def consumer_argv(target: str, kind: str) -> list[str]:
    workers = IO_CONCURRENCY if kind == "sleep" else 8
    return [
        venv_bin("huey_consumer"),
        target,
        "-k",
        "thread",
        "-w",
        str(workers),
        "-d",
        "0.01",
        "-n",
        "-q",
    ]


def worker(kind: str) -> None:
    execv(consumer_argv("bench_huey.huey", kind))
