"""Dramatiq adapter: RedisBroker, no results middleware, ``--processes 1``.

noop/latency: 8 threads (the default); sleep: BENCH_IO_CONCURRENCY threads.
"""

from __future__ import annotations

import time

import dramatiq
from _common import IO_CONCURRENCY, REC, SLEEP, execv, redis_url, venv_bin
from dramatiq.brokers.redis import RedisBroker

broker = RedisBroker(url=redis_url("dramatiq"))
dramatiq.set_broker(broker)


@dramatiq.actor(queue_name="bench", max_retries=0)
def noop() -> None:
    REC.done("noop")


@dramatiq.actor(queue_name="bench", max_retries=0)
def lat(ts: float, seq: int) -> None:
    REC.latency(ts, seq)


@dramatiq.actor(queue_name="bench", max_retries=0)
def sleep() -> None:
    t0 = time.time()
    time.sleep(SLEEP)
    REC.done("sleep", t0)


TASKS = {"noop": noop, "lat": lat, "sleep": sleep}


def version() -> str:
    return dramatiq.__version__


def reset() -> None:
    broker.client.flushdb()


class Client:
    def open(self) -> None:
        pass

    def close(self) -> None:
        pass

    def send(self, kind: str, *args: object) -> None:
        TASKS[kind].send(*args)

    def send_many(self, kind: str, n: int) -> None:
        actor = TASKS[kind]
        for _ in range(n):
            actor.send()


def worker(kind: str) -> None:
    threads = IO_CONCURRENCY if kind == "sleep" else 8
    execv(
        [
            venv_bin("dramatiq"),
            "bench_dramatiq",
            "--processes",
            "1",
            "--threads",
            str(threads),
            "--queues",
            "bench",
        ]
    )
