"""The workloads, each one bounded run of one library.

W1 no-op throughput, W2 enqueue->start latency, W3 10 ms I/O tasks, W4 embedded
backends; W5 (worker RSS) is sampled during W1/W2/W3.
"""

from __future__ import annotations

import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import _venvs
from ._proc import DRIVER, BenchError, Worker, adapter_env, run_json

PG_DBS = ("bench_procrastinate", "bench_omniq", "bench_floor")


@dataclass(frozen=True)
class Peer:
    """One library on one engine, driven by ``adapters/bench_<adapter>.py``."""

    name: str
    adapter: str
    venv: str | None  # None: the workspace's python (OmniQ)
    engine: str
    env: dict[str, str] = field(default_factory=dict)

    def python(self) -> str:
        return _venvs.python_for(self.venv)

    def environ(self, **extra: str) -> dict[str, str]:
        return adapter_env({**self.env, **extra})


PEERS: dict[str, Peer] = {
    p.name: p
    for p in [
        Peer("omniq", "omniq", None, "redis"),
        Peer(
            "omniq-pg",
            "omniq",
            None,
            "postgresql",
            {"BENCH_OMNIQ_URL": "postgresql://postgres@127.0.0.1:5432/bench_omniq"},
        ),
        Peer(
            "omniq-pg-churned",
            "omniq",
            None,
            "postgresql",
            {
                "BENCH_OMNIQ_URL": "postgresql://postgres@127.0.0.1:5432/bench_omniq",
                "BENCH_CHURN": "100000",
            },
        ),
        Peer(
            "omniq-nats",
            "omniq",
            None,
            "nats",
            {"BENCH_OMNIQ_URL": "nats://127.0.0.1:4222?namespace=BENCH"},
        ),
        # W1 per worker type: one `omniq worker -w TYPE` process on Redis, sync no-ops
        # (gevent: `run_worker_sync(worker_type="gevent")` in an unpatched process).
        Peer("omniq-thread", "omniq", None, "redis", {"BENCH_OMNIQ_WORKER": "thread"}),
        Peer("omniq-process", "omniq", None, "redis", {"BENCH_OMNIQ_WORKER": "process"}),
        Peer("omniq-gevent", "omniq", None, "redis", {"BENCH_OMNIQ_WORKER": "gevent"}),
        # W1 against worker processes under one supervisor (`--processes N`); both
        # count their tasks in the shared file, so the ratio is the supervisor's gain.
        Peer("omniq-procs1", "omniq", None, "redis", {"BENCH_OMNIQ_PROCESSES": "1"}),
        Peer("omniq-procs2", "omniq", None, "redis", {"BENCH_OMNIQ_PROCESSES": "2"}),
        Peer("celery", "celery", "celery", "redis"),
        Peer("dramatiq", "dramatiq", "dramatiq", "redis"),
        Peer("rq", "rq", "rq", "redis"),
        Peer("huey", "huey", "huey", "redis"),
        Peer("arq", "arq", "arq", "redis"),
        Peer("taskiq", "taskiq", "taskiq", "redis"),
        Peer("saq", "saq", "saq", "redis"),
        Peer("procrastinate", "procrastinate", "procrastinate", "postgresql"),
    ]
}


def set_churn(n: int) -> None:
    """Tasks the churned PostgreSQL peer runs through its store before each workload."""
    for name, peer in list(PEERS.items()):
        if "BENCH_CHURN" in peer.env:
            PEERS[name] = Peer(**{**peer.__dict__, "env": {**peer.env, "BENCH_CHURN": str(n)}})


def omniq_at(rev: str, base: str = "omniq") -> Peer:
    """OmniQ peer ``base`` (its engine and settings) from git revision ``rev``'s package
    sources (exported once to a temporary directory and put ahead of the workspace's on
    PYTHONPATH); the adapter and the engine are the working tree's, so only the library
    differs."""
    root = Path(__file__).resolve().parents[2]
    commit = subprocess.run(
        ["git", "rev-parse", rev], cwd=root, capture_output=True, text=True, check=True
    ).stdout.strip()
    dest = Path(tempfile.gettempdir()) / f"omniq-bench-{commit}"
    if not dest.exists():
        tmp = Path(tempfile.mkdtemp(prefix=f"omniq-bench-{commit}-"))
        archive = subprocess.run(
            ["git", "archive", commit, "packages"], cwd=root, capture_output=True, check=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(tmp)], input=archive, check=True)
        tmp.rename(dest)
    srcs = sorted(str(p) for p in (dest / "packages").glob("*/src"))
    path = ":".join([str(DRIVER.parent), *srcs])
    b = PEERS[base]
    return Peer(f"{base}@{rev}", "omniq", None, b.engine, {**b.env, "PYTHONPATH": path})


SQLITE_DIR = Path(tempfile.gettempdir()) / "omniq-bench"

# W4: OmniQ in one process on its embedded backends; Huey's SqliteHuey with its consumer.
EMBEDDED: dict[str, tuple[Peer, str]] = {
    "omniq-memory": (PEERS["omniq"], "memory://"),
    "omniq-sqlite": (PEERS["omniq"], f"sqlite:///{SQLITE_DIR}/omniq.db"),
    "omniq-file": (PEERS["omniq"], f"file://{SQLITE_DIR}/omniq-files"),
    "huey-sqlite": (
        Peer("huey-sqlite", "huey_sqlite", "huey", "sqlite", {"BENCH_SQLITE_DIR": str(SQLITE_DIR)}),
        "",
    ),
}


def ensure_databases() -> None:
    """Create the benchmark's own PostgreSQL databases (never touches ``test``)."""
    for db in PG_DBS:
        psql = ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "test", "-tAc"]
        found = subprocess.run(
            [*psql, f"SELECT 1 FROM pg_database WHERE datname = '{db}'"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
        if found != "1":
            subprocess.run([*psql, f"CREATE DATABASE {db}"], capture_output=True, check=False)


def version(peer: Peer) -> str:
    return str(run_json(peer.python(), [peer.adapter, "version"], peer.environ(), 120)["version"])


def _reset(peer: Peer) -> None:
    run_json(peer.python(), [peer.adapter, "reset"], peer.environ(), 1800)


def throughput(peer: Peer, kind: str, n: int, tmp: Path) -> dict[str, float]:
    """Enqueue ``n`` tasks of ``kind``, then drain them with one worker process.

    enqueue rate = n / enqueue wall time (client process, peer's fastest bulk API);
    drain rate = n / (last task finished - first task started), timed in the worker;
    end-to-end = n / (enqueue time + drain time). Worker boot is not counted.
    """
    _reset(peer)
    env = peer.environ()
    enq = run_json(
        peer.python(), [peer.adapter, "enqueue", "--kind", kind, "--n", str(n)], env, 600
    )["seconds"]
    wenv = peer.environ(BENCH_OUT=str(tmp), BENCH_N=str(n), BENCH_KIND=kind)
    with Worker(peer.python(), peer.adapter, wenv, tmp / "worker.log") as w:
        done = w.wait_for(tmp / f"{kind}.json", 60 + n / 50)
        peak = w.peak_kb
    drain = max(done["t_last"] - done["t_first"], 1e-9)
    return {
        "enqueue_rate": n / enq,
        "drain_rate": n / drain,
        "e2e_rate": n / (enq + drain),
        "peak_rss_mb": peak / 1024,
    }


def enqueue_rates(peer: Peer, n: int, c: int, tmp: Path) -> dict[str, float]:
    """W6: ``n`` no-ops enqueued one at a time (each awaited before the next), then ``n``
    more from ``c`` concurrent senders each enqueueing one at a time; no worker runs."""
    _reset(peer)
    env = peer.environ()
    single = run_json(peer.python(), [peer.adapter, "single", "--n", str(n)], env, 600)
    _reset(peer)
    conc = run_json(
        peer.python(), [peer.adapter, "concurrent", "--n", str(n), "--c", str(c)], env, 600
    )
    return {"single_rate": n / single["seconds"], "concurrent_rate": n / conc["seconds"]}


def latency(peer: Peer, n: int, gap: float, tmp: Path) -> dict[str, float]:
    """Start a worker, let it go idle, then enqueue ``n`` tasks one at a time, ``gap``
    seconds apart, each carrying ``time.time()`` at enqueue; the task subtracts it from
    ``time.time()`` at start. Also samples the idle worker's RSS (W5)."""
    _reset(peer)
    wenv = peer.environ(BENCH_OUT=str(tmp), BENCH_N=str(n), BENCH_KIND="lat")
    with Worker(peer.python(), peer.adapter, wenv, tmp / "worker.log") as w:
        client = subprocess.Popen(
            [peer.python(), str(DRIVER), peer.adapter, "latency", "--n", str(n), "--gap", str(gap)],
            cwd=DRIVER.parent,
            env=wenv,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        idle_kb = 0
        try:
            deadline = time.monotonic() + 180
            while not (tmp / "warm").exists():
                if client.poll() is not None:
                    raise BenchError(f"latency client exited:\n{client.stderr.read()[-2000:]}")
                if w.proc.poll() is not None or time.monotonic() > deadline:
                    raise BenchError(f"worker not ready:\n{w.log_tail()}")
                time.sleep(0.02)
            time.sleep(0.2)
            idle_kb = w.rss_kb()
            data = w.wait_for(tmp / "latency.json", 60 + n * gap * 3)
            client.wait(timeout=60)
        finally:
            if client.poll() is None:
                client.kill()
                client.wait()
    lat = sorted(data["latencies"])
    return {
        "p50_ms": statistics.median(lat) * 1000,
        "p99_ms": lat[min(len(lat) - 1, round(0.99 * (len(lat) - 1)))] * 1000,
        "idle_rss_mb": idle_kb / 1024,
    }


def embedded(name: str, n: int, tmp: Path) -> dict[str, float]:
    """W4: the W1 shape on an embedded backend (OmniQ: enqueue and drain in one
    process; Huey SQLite: client process + consumer process)."""
    peer, url = EMBEDDED[name]
    SQLITE_DIR.mkdir(parents=True, exist_ok=True)
    if not url:
        return throughput(peer, "noop", n, tmp)
    out = run_json(
        peer.python(), [peer.adapter, "embedded", "--url", url, "--n", str(n)], peer.environ(), 600
    )
    return {
        "enqueue_rate": n / out["enqueue_s"],
        "drain_rate": n / out["drain_s"],
        "e2e_rate": n / (out["enqueue_s"] + out["drain_s"]),
    }
