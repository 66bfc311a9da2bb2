"""Shared by every adapter, on both sides: settings (which Redis DB, which database)
and the worker-side recorder the benchmark tasks report to.

Imported from the peer's own venv, so it uses the standard library only.
"""

from __future__ import annotations

import itertools
import json
import os
import sys
import threading
import time
from pathlib import Path

REDIS_HOST = "127.0.0.1"
REDIS_PORT = 6379
PG_DSN_BASE = "postgresql://postgres@127.0.0.1:5432/"
SLEEP = float(os.environ.get("BENCH_SLEEP", "0.01"))
IO_CONCURRENCY = int(os.environ.get("BENCH_IO_CONCURRENCY", "100"))

# One Redis database per library (tests use 0 and 1).
REDIS_DB = {
    "celery": 6,
    "dramatiq": 7,
    "rq": 8,
    "huey": 9,
    "arq": 10,
    "taskiq": 11,
    "saq": 12,
    "omniq": 13,
}


def redis_url(peer: str) -> str:
    return f"redis://{REDIS_HOST}:{REDIS_PORT}/{REDIS_DB[peer]}"


def pg_dsn(peer: str) -> str:
    return f"{PG_DSN_BASE}bench_{peer}"


def execv(argv: list[str]) -> None:
    """Replace this process with the peer's real worker command (same pid, so the
    harness measures the worker's own memory)."""
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(argv[0], argv)


def venv_bin(name: str) -> str:
    return str(Path(sys.executable).parent / name)


class Recorder:
    """Counts benchmark tasks in the worker process and writes a JSON file under
    BENCH_OUT once BENCH_N of a kind are done. Counting uses ``next(itertools.count())``
    which is atomic under the GIL, so thread pools need no lock."""

    def __init__(self) -> None:
        self.n = int(os.environ.get("BENCH_N", "0") or 0)
        self.out = Path(os.environ.get("BENCH_OUT", ".")) if "BENCH_OUT" in os.environ else None
        self._counts = {"noop": itertools.count(1), "sleep": itertools.count(1)}
        self._first: dict[str, float] = {}
        self._lat: list[float] = []
        self._lock = threading.Lock()
        self._ready = False

    def _write(self, name: str, data: object) -> None:
        if self.out is None:
            return
        tmp = self.out / (name + ".tmp")
        tmp.write_text(json.dumps(data))
        tmp.rename(self.out / name)

    def done(self, kind: str, started: float | None = None) -> None:
        i = next(self._counts[kind])
        now = time.time()
        if i == 1:
            self._first[kind] = started if started is not None else now
        if i == self.n:
            self._write(f"{kind}.json", {"t_first": self._first[kind], "t_last": now, "n": i})

    def latency(self, ts: float, seq: int) -> None:
        now = time.time()
        if seq < 0:
            if not self._ready:
                self._ready = True
                self._write("ready", {"t": now})
            return
        with self._lock:
            self._lat.append(now - ts)
            if len(self._lat) == self.n:
                self._write("latency.json", {"latencies": self._lat})


REC = Recorder()


def flush() -> None:
    sys.stdout.flush()
