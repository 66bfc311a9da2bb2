"""The chaos suite's harness: a fleet of worker processes, a killer, a ledger reader and
an auditor that turns the stores' final state into figures.

Worker processes run ``chaos_worker.py`` in their own session (process group), so a
SIGKILL to the group takes a worker together with its process-worker children, as a
host or container kill would.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omniq.models import EventType, Task, TaskResult, TaskStatus
from omniq.storage import open_storage

__all__ = ["FIGURES", "Audit", "Fleet", "audit", "read_ledger", "record"]

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
FIGURES: list[str] = []
"""One line per scenario; printed by ``pytest_terminal_summary`` in conftest."""


def record(line: str) -> None:
    """Print a figures line now and keep it for the end-of-session summary."""
    print(line, flush=True)
    FIGURES.append(line)


class Fleet:
    """``size`` worker processes sharing one config; dead ones can be replaced."""

    def __init__(self, cfg: dict[str, Any], log_dir: Path, size: int = 3) -> None:
        self.cfg = cfg
        self.log_dir = log_dir
        self.size = size
        self.procs: list[subprocess.Popen[bytes]] = []
        self.all_pids: list[int] = []
        self.killed: set[int] = set()
        self.terminated: set[int] = set()
        self.deaths: set[int] = set()
        """Workers that died on their own (not killed or terminated by the test)."""
        self.rng = random.Random(int(os.environ.get("OMNIQ_CHAOS_SEED", "1234")))
        self._seq = 0

    def spawn(self, **overrides: Any) -> subprocess.Popen[bytes]:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(HERE), str(ROOT), env.get("PYTHONPATH", "")])
        self._seq += 1
        log = open(self.log_dir / f"worker-{self._seq}.log", "wb")  # noqa: SIM115
        cfg = dict(self.cfg, **overrides)
        if cfg.get("cli"):
            argv, more = _cli_argv(cfg)
            env.update(more)
        else:
            argv = [sys.executable, str(HERE / "chaos_worker.py"), json.dumps(cfg)]
        proc = subprocess.Popen(
            argv,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        self.procs.append(proc)
        self.all_pids.append(proc.pid)
        return proc

    def start(self) -> Fleet:
        for _ in range(self.size):
            self.spawn()
        return self

    def alive(self) -> list[subprocess.Popen[bytes]]:
        return [p for p in self.procs if p.poll() is None]

    def replace_dead(self) -> int:
        """Respawn workers that exited on their own (a poison task); returns how many."""
        n = 0
        for p in list(self.procs):
            if p.poll() is not None:
                self.procs.remove(p)
                if p.pid not in self.killed and p.pid not in self.terminated:
                    self.deaths.add(p.pid)
                _killpg(p.pid, signal.SIGKILL)
                self.spawn()
                n += 1
        return n

    def kill_random(self) -> int:
        """SIGKILL one random live worker (with its children) and start a replacement."""
        victim = self.rng.choice(self.alive())
        self.killed.add(victim.pid)
        _killpg(victim.pid, signal.SIGKILL)
        victim.wait(10)
        self.procs.remove(victim)
        self.spawn()
        return victim.pid

    def signal(self, proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
        if sig in (signal.SIGTERM, signal.SIGINT):
            self.terminated.add(proc.pid)
        elif sig is signal.SIGKILL:
            self.killed.add(proc.pid)
        os.kill(proc.pid, sig)

    def stop(self, timeout: float = 30.0) -> list[int | None]:
        """SIGTERM every live worker and wait; returns their exit codes."""
        live = self.alive()
        for p in live:
            self.signal(p, signal.SIGTERM)
        codes: list[int | None] = []
        for p in live:
            try:
                codes.append(p.wait(timeout))
            except subprocess.TimeoutExpired:
                codes.append(None)
        return codes

    def close(self) -> None:
        for p in self.procs:
            _killpg(p.pid, signal.SIGCONT)
            _killpg(p.pid, signal.SIGKILL)
            p.wait(10)
        self.procs.clear()

    def logs(self) -> str:
        return "\n".join(
            f"--- {f.name}\n{f.read_text(errors='replace')[-3000:]}"
            for f in sorted(self.log_dir.glob("worker-*.log"))
        )


def _cli_argv(cfg: dict[str, Any]) -> tuple[list[str], dict[str, str]]:
    """``omniq worker`` (the real command line) for a config; options it has no flag for
    go through their ``OMNIQ_*`` variables."""
    argv = [sys.executable, "-m", "omniq.core.cli", "worker", "--url", cfg["url"],
            "--concurrency", str(cfg.get("concurrency", 8)), "--no-scheduler"]  # fmt: skip
    env = {
        "OMNIQ_LEASE_SECONDS": str(cfg["lease"]),
        "OMNIQ_RETRY_DELAY": str(cfg.get("retry_delay", 0.01)),
    }
    if cfg.get("events"):
        env["OMNIQ_EVENT_STORAGE_URL"] = cfg["events"]
    for name, value in cfg.get("pool", {}).items():
        env[f"OMNIQ_{name.upper()}"] = str(value)
    return argv, env


def _killpg(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


class Run:
    """One ledger line: a run of a task started in process ``pid`` (parent ``ppid``)."""

    __slots__ = ("pid", "ppid", "t", "what")

    def __init__(self, pid: int, ppid: int, what: str, t: int) -> None:
        self.pid, self.ppid, self.what, self.t = pid, ppid, what, t


def read_ledger(path: Path) -> dict[str, list[Run]]:
    """Ledger lines grouped by task tag, in the order they were written."""
    runs: dict[str, list[Run]] = collections.defaultdict(list)
    if not path.exists():
        return runs
    for line in path.read_text().splitlines():
        tag, pid, ppid, what, t = line.split()
        runs[tag].append(Run(int(pid), int(ppid), what, int(t)))
    return runs


def worker_pid(result: TaskResult) -> int | None:
    """The OS pid inside a result's worker id (``host:pid:suffix``)."""
    if not result.worker_id:
        return None
    parts = result.worker_id.split(":")
    return int(parts[-2]) if len(parts) >= 3 and parts[-2].isdigit() else None


@dataclass
class Audit:
    """What the stores and the ledger say after a chaos run."""

    tasks: int = 0
    succeeded: int = 0
    results_ok: int = 0
    lost: list[str] = field(default_factory=list)
    """Tasks not ending successful with a success result (status or result missing)."""
    lost_detail: list[str] = field(default_factory=list)
    """For the first lost tasks, why: stored status and attempt, the result (or None),
    COMPLETE events, and the ledger's runs (pid, what, seconds after the first run)."""
    runs: int = 0
    reruns: int = 0
    """Extra ledger runs beyond one per task."""
    unexplained: list[str] = field(default_factory=list)
    """Tasks re-run although none of their earlier runs was in a killed/stopped worker."""
    duplicate_completions: list[str] = field(default_factory=list)
    """Tasks with more than one COMPLETE event (a second accepted success)."""
    complete_events: int = 0
    statuses: dict[str, int] = field(default_factory=dict)

    def line(self, scenario: str, *, kills: int, seconds: float, extra: str = "") -> str:
        return (
            f"[chaos] {scenario}: tasks={self.tasks} runs={self.runs} kills={kills} "
            f"re-runs={self.reruns} (unexplained={len(self.unexplained)}) "
            f"duplicates={len(self.duplicate_completions)} losses={len(self.lost)} "
            f"time={seconds:.1f}s{(' ' + extra) if extra else ''}"
        )


def _owner(run: Run, workers: set[int]) -> int:
    return run.pid if run.pid in workers else run.ppid


async def audit(
    url: str,
    tasks: Sequence[Task],
    tags: Sequence[str],
    ledger: Path,
    *,
    workers: Iterable[int],
    interrupted: Iterable[int],
    events_url: str | None = None,
    expect: TaskStatus = TaskStatus.SUCCESS,
) -> Audit:
    """Check every task's final state, result, COMPLETE events and ledger runs.

    ``interrupted`` are the worker pids the test killed or stopped: a task may run more
    than once only if every run but the one that produced its result was in one of them.
    """
    a = Audit(tasks=len(tasks))
    ids = [t.id for t in tasks]
    workers = set(workers)
    interrupted = set(interrupted)
    statuses: collections.Counter[str] = collections.Counter()
    async with open_storage(url) as backend:
        assert backend.tasks is not None and backend.results is not None
        stored: list[Task | None] = []
        results: list[TaskResult | None] = []
        for i in range(0, len(ids), 500):
            stored += await backend.tasks.get(ids[i : i + 500])
            results += await backend.results.get(ids[i : i + 500])
    completes: collections.Counter[str] = collections.Counter()
    if events_url is not None:
        async with open_storage(events_url) as ev:
            assert ev.events is not None
            for e in await ev.events.query(types=[EventType.COMPLETE]):
                completes[e.task_id] += 1
    a.complete_events = sum(completes.values())
    a.duplicate_completions = [tid for tid, n in completes.items() if n > 1]
    runs = read_ledger(ledger)
    for task, st, res, tag in zip(tasks, stored, results, tags, strict=True):
        statuses[st.status.value if st is not None else "missing"] += 1
        ok = st is not None and st.status is expect
        ok = ok and res is not None and res.status is expect
        if ok:
            a.succeeded += 1
            a.results_ok += 1
        else:
            a.lost.append(task.id)
            if len(a.lost_detail) < 10:
                a.lost_detail.append(_why_lost(task.id, tag, st, res, completes, runs.get(tag, [])))
        mine = runs.get(tag, [])
        a.runs += len(mine)
        a.reruns += max(0, len(mine) - 1)
        if len(mine) > 1 and res is not None:
            final = worker_pid(res)
            others = list(mine)
            for r in mine:
                if _owner(r, workers) == final:
                    others.remove(r)
                    break
            if any(_owner(r, workers) not in interrupted for r in others):
                a.unexplained.append(tag)
    a.statuses = dict(statuses)
    return a


def _why_lost(
    task_id: str,
    tag: str,
    st: Task | None,
    res: TaskResult | None,
    completes: collections.Counter[str],
    mine: list[Run],
) -> str:
    """One line saying what the stores and the ledger hold for a lost task."""
    state = "missing" if st is None else f"{st.status.value} attempt={st.attempt}"
    got = (
        "None"
        if res is None
        else f"{res.status.value} attempts={res.attempts} worker={res.worker_id}"
    )
    t0 = mine[0].t if mine else 0
    ran = ", ".join(f"{r.pid}/{r.ppid} {r.what} +{(r.t - t0) / 1e9:.2f}s" for r in mine)
    return (
        f"{tag} {task_id}: task={state} result={got} complete_events={completes[task_id]} "
        f"runs=[{ran}]"
    )


def wait_until(cond: Any, timeout: float, what: str, interval: float = 0.05) -> None:
    """Poll ``cond()`` until true or fail after ``timeout`` seconds (for external
    processes, which offer nothing to wait on)."""
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)
