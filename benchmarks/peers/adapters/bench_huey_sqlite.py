"""Huey's embedded mode: SqliteHuey on a file, the same consumer settings as
``bench_huey`` (the consumer polls SQLite; ``-d 0.01`` keeps that poll short)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import huey as huey_pkg
from _common import REC, SLEEP, execv
from bench_huey import consumer_argv
from huey import SqliteHuey

DB = os.environ.get("BENCH_SQLITE_DIR", "/tmp/omniq-bench") + "/huey.db"
Path(DB).parent.mkdir(parents=True, exist_ok=True)
huey = SqliteHuey("bench", filename=DB)


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
    for suffix in ("", "-wal", "-shm"):
        Path(DB + suffix).unlink(missing_ok=True)


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


def worker(kind: str) -> None:
    execv(consumer_argv("bench_huey_sqlite.huey", kind))
