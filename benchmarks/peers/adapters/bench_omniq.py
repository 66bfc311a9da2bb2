"""OmniQ adapter, written against the public facade only: ``omniq.core.OmniQ`` with
``enqueue``/``enqueue_many``/``run_worker``. Runs with the workspace's python.

The backend comes from BENCH_OMNIQ_URL (default: Redis DB 13); the worker is one
``omniq worker`` process with ``--concurrency`` = BENCH_IO_CONCURRENCY.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
from importlib.metadata import version as dist_version
from pathlib import Path

from _common import IO_CONCURRENCY, REC, SLEEP, execv, redis_url, venv_bin

URL = os.environ.get("BENCH_OMNIQ_URL") or redis_url("omniq")
SCHEMA = os.environ.get("BENCH_OMNIQ_SCHEMA", "")
"""PostgreSQL schema (default OmniQ's ``omniq``): lets two harness runs share a database."""
if SCHEMA and URL.startswith(("postgresql://", "postgres://")):
    URL += ("&" if "?" in URL else "?") + f"schema={SCHEMA}"
CHURN = int(os.environ.get("BENCH_CHURN", "0"))
"""Tasks run through the store by ``reset`` before a workload (0: a fresh store)."""
QUEUE = "bench"
CHUNK = 1000
FUNCS = {"noop": "bench_omniq:noop", "lat": "bench_omniq:lat", "sleep": "bench_omniq:sleep"}
WORKER_TYPE = os.environ.get("BENCH_OMNIQ_WORKER", "")
"""thread, process or gevent: the worker runs sync no-ops on that pool (W1 only)."""
if WORKER_TYPE:
    FUNCS["noop"] = "bench_omniq:noop_proc" if WORKER_TYPE == "process" else "bench_omniq:noop_sync"
PROCESSES = int(os.environ.get("BENCH_OMNIQ_PROCESSES", "0"))
"""Worker processes under one supervisor (``run_worker(processes=N)``); 0: a plain
single-process worker. When set, every task kind counts in the shared files (as
``noop_proc`` does), whatever N is, so one and several processes pay the same."""
if PROCESSES and not WORKER_TYPE:
    FUNCS.update(
        noop="bench_omniq:noop_shared",
        lat="bench_omniq:lat_shared",
        sleep="bench_omniq:sleep_shared",
    )


async def noop() -> None:
    REC.done("noop")


def noop_sync() -> None:
    """The no-op for thread and gevent workers."""
    REC.done("noop")


class _Shared:
    """One task kind counted across worker processes in ``<kind>.log`` under BENCH_OUT.

    Each process adds O_APPEND records ``count first last`` (a write of one record is
    atomic), one per ``FLUSH`` seconds of its event loop's tasks, so the count costs a
    few syscalls per batch, not per task; a task outside a loop writes its own. The process
    whose record brings the total to BENCH_N writes ``<kind>.json`` (the earliest first
    start, the latest last end), the file the harness waits for.
    """

    FLUSH = 0.002

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.fd: int | None = None
        self.count = 0
        self.first = self.last = 0.0
        self.armed = False

    def done(self, started: float | None = None) -> None:
        now = time.time()
        if self.count == 0:
            self.first = started if started is not None else now
        self.count += 1
        self.last = now
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.flush()
            return
        if not self.armed:
            self.armed = True
            loop.call_later(self.FLUSH, self.flush)

    def flush(self) -> None:
        self.armed = False
        if not self.count:
            return
        path = REC.out / f"{self.kind}.log"
        if self.fd is None:
            self.fd = os.open(str(path), os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        os.write(self.fd, f"{self.count:8d} {self.first:17.6f} {self.last:17.6f}\n".encode())
        self.count = 0
        records = [line.split() for line in path.read_text().splitlines()]
        if sum(int(r[0]) for r in records) == REC.n:
            out = {
                "t_first": min(float(r[1]) for r in records),
                "t_last": max(float(r[2]) for r in records),
                "n": REC.n,
            }
            tmp = REC.out / f"{self.kind}.json.tmp"
            tmp.write_text(json.dumps(out))
            tmp.rename(REC.out / f"{self.kind}.json")


_NOOP, _SLEEP = _Shared("noop"), _Shared("sleep")


async def noop_shared() -> None:
    """The async no-op when the worker runs under a supervisor: counted in the shared
    file."""
    _NOOP.done()


def noop_proc() -> None:
    """The no-op for process workers: the tasks run in several processes (a pool's
    children, without an event loop to batch in), so each appends one fixed-size
    record to ``noop.proc``; the file's size is the count, read with ``fstat``."""
    global _proc_fd
    if _proc_fd is None:
        _proc_fd = os.open(str(REC.out / "noop.proc"), os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    os.write(_proc_fd, f"{time.time():17.6f}\n".encode())
    if os.fstat(_proc_fd).st_size == REC.n * _PROC_SIZE:
        with open(REC.out / "noop.proc", "rb") as f:
            first = float(f.read(_PROC_SIZE))
        REC._write("noop.json", {"t_first": first, "t_last": time.time(), "n": REC.n})


_PROC_SIZE = 18
_proc_fd: int | None = None


async def sleep_shared() -> None:
    """The W3 task under a supervisor: counted in the shared file."""
    t0 = time.time()
    await asyncio.sleep(SLEEP)
    _SLEEP.done(t0)


_LAT_SIZE = 18
_lat_fd: int | None = None


async def lat_shared(ts: float, seq: int) -> None:
    """The W2 task under a supervisor: every process appends its latencies (one
    fixed-size record each) to ``lat.log``; the one completing BENCH_N writes
    ``latency.json``. A warm-up run (``seq < 0``) writes ``ready`` once."""
    global _lat_fd
    now = time.time()
    if seq < 0:
        if not (REC.out / "ready").exists():
            REC._write("ready", {"t": now})
        return
    path = REC.out / "lat.log"
    if _lat_fd is None:
        _lat_fd = os.open(str(path), os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    os.write(_lat_fd, f"{now - ts:17.9f}\n".encode())
    if os.fstat(_lat_fd).st_size == REC.n * _LAT_SIZE:
        lats = [float(x) for x in path.read_text().split()]
        REC._write("latency.json", {"latencies": lats})


async def churned() -> None:
    """The churn phase's task (not recorded)."""


async def lat(ts: float, seq: int) -> None:
    REC.latency(ts, seq)


async def sleep() -> None:
    t0 = time.time()
    await asyncio.sleep(SLEEP)
    REC.done("sleep", t0)


def _omniq(url: str = URL):  # type: ignore[no-untyped-def]
    from omniq.core import OmniQ

    return OmniQ(url)


def version() -> str:
    return dist_version("omniq-core")


def _local_path(url: str) -> Path | None:
    for prefix in ("sqlite:///", "file://"):
        if url.startswith(prefix):
            return Path(url[len(prefix) :])
    return None


async def reset(url: str = URL) -> None:
    if url.startswith("redis://"):
        import redis.asyncio as aredis

        client = aredis.Redis.from_url(url)
        await client.flushdb()
        await client.aclose()
    elif url.startswith(("postgresql://", "postgres://")):
        import asyncpg

        conn = await asyncpg.connect(url.split("?", maxsplit=1)[0])
        await conn.execute(
            "DROP SCHEMA IF EXISTS public CASCADE; CREATE SCHEMA public; "
            f'DROP SCHEMA IF EXISTS "{SCHEMA or "omniq"}" CASCADE;'
        )
        await conn.close()
    elif url.startswith("nats://"):
        from omniq.storage import open_storage

        async with open_storage(url) as be:
            await be.drop()  # type: ignore[attr-defined]
    else:
        _remove_local(url)
    if CHURN:
        await churn(url, CHURN)


async def churn(url: str, n: int) -> None:
    """The churn phase: enqueue ``n`` no-ops and drain them with a burst worker in this
    process, leaving the store as a queue that has already run ``n`` tasks (finished
    rows kept for their retention; no manual VACUUM)."""
    oq = _omniq(url)
    async with oq:
        for start in range(0, n, CHUNK):
            await oq.enqueue_many(
                [("bench_omniq:churned", ())] * min(CHUNK, n - start), queue=QUEUE
            )
        await oq.run_worker(queues=[QUEUE], concurrency=IO_CONCURRENCY, burst=True)


def _remove_local(url: str) -> None:
    path = _local_path(url)
    if path is not None:
        if path.is_dir():
            shutil.rmtree(path)
        for suffix in ("", "-wal", "-shm"):
            Path(str(path) + suffix).unlink(missing_ok=True)


class Client:
    async def open(self) -> None:
        self.oq = _omniq()
        await self.oq.open()

    async def close(self) -> None:
        await self.oq.close()

    async def send(self, kind: str, *args: object) -> None:
        await self.oq.enqueue(FUNCS[kind], args, queue=QUEUE)

    async def send_many(self, kind: str, n: int) -> None:
        await _send_many(self.oq, kind, n)


async def _send_many(oq, kind: str, n: int) -> None:  # type: ignore[no-untyped-def]
    item = (FUNCS[kind], ())
    for start in range(0, n, CHUNK):
        await oq.enqueue_many([item] * min(CHUNK, n - start), queue=QUEUE)


def worker(kind: str) -> None:
    """Become ``omniq worker``, the command users run (so W5 is its memory): the console
    script, or ``python -m omniq.core.cli`` for a revision without its lean entry point
    (``--omniq-ref``: that revision's sources come first on PYTHONPATH)."""
    from importlib.util import find_spec

    if WORKER_TYPE == "gevent":
        # In this process, unpatched: the gevent pool runs its greenlets on a hub thread.
        _omniq().run_worker_sync(queues=[QUEUE], concurrency=IO_CONCURRENCY, worker_type="gevent")
        return
    if find_spec("omniq.core._entry") is not None:
        argv = [venv_bin("omniq")]
    else:
        argv = [sys.executable, "-m", "omniq.core.cli"]
    argv += ["worker", "-u", URL, "-q", QUEUE, "-c", str(IO_CONCURRENCY)]
    if WORKER_TYPE:
        argv += ["-w", WORKER_TYPE]
    if PROCESSES:
        argv += ["-p", str(PROCESSES)]
    execv(argv)


def embedded(url: str, n: int) -> dict[str, float]:
    """W4: enqueue ``n`` no-ops, then drain them with a burst worker, in this process."""
    url = url or URL
    path = _local_path(url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)

    out = Path(tempfile.mkdtemp(prefix="omniq-bench-embedded-"))
    REC.n, REC.out = n, out

    async def run() -> dict[str, float]:
        await reset(url)
        oq = _omniq(url)
        async with oq:
            t0 = time.perf_counter()
            await _send_many(oq, "noop", n)
            t1 = time.perf_counter()
            await oq.run_worker(queues=[QUEUE], concurrency=IO_CONCURRENCY, burst=True)
        # Drain is timed like the peers': first task start to last task end.
        done = json.loads((out / "noop.json").read_text())
        return {"enqueue_s": t1 - t0, "drain_s": done["t_last"] - done["t_first"]}

    try:
        return asyncio.run(run())
    finally:
        shutil.rmtree(out, ignore_errors=True)
