"""RQ adapter: SimpleWorker (executes in the worker process instead of forking per
job: RQ's only single-process mode; it runs one job at a time)."""

from __future__ import annotations

import time

import rq
from _common import REC, SLEEP, execv, redis_url, venv_bin
from redis import Redis
from rq import Queue

conn = Redis.from_url(redis_url("rq"))
queue = Queue("bench", connection=conn)


def noop() -> None:
    REC.done("noop")


def lat(ts: float, seq: int) -> None:
    REC.latency(ts, seq)


def sleep() -> None:
    t0 = time.time()
    time.sleep(SLEEP)
    REC.done("sleep", t0)


TASKS = {"noop": noop, "lat": lat, "sleep": sleep}


def version() -> str:
    return rq.__version__ if hasattr(rq, "__version__") else rq.VERSION


def reset() -> None:
    conn.flushdb()


class Client:
    def open(self) -> None:
        pass

    def close(self) -> None:
        pass

    def send(self, kind: str, *args: object) -> None:
        queue.enqueue(TASKS[kind], *args)

    def send_many(self, kind: str, n: int) -> None:
        func = TASKS[kind]
        chunk = 1000
        for start in range(0, n, chunk):
            jobs = [Queue.prepare_data(func) for _ in range(min(chunk, n - start))]
            queue.enqueue_many(jobs)


def worker(kind: str) -> None:
    execv(
        [
            venv_bin("rq"),
            "worker",
            "--url",
            redis_url("rq"),
            "--worker-class",
            "rq.worker.SimpleWorker",
            "--logging_level",
            "WARNING",
            "bench",
        ]
    )
