"""Process plumbing: run adapter commands, start/stop worker processes in their own
session, and sample the resident memory of a worker's whole process tree."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

from ._venvs import PYCACHE

ADAPTERS = Path(__file__).resolve().parent / "adapters"
DRIVER = ADAPTERS / "driver.py"
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024


class BenchError(RuntimeError):
    """A peer run failed; the message carries the tail of its log."""


def adapter_env(extra: dict[str, str]) -> dict[str, str]:
    env = dict(os.environ)
    for key in ("VIRTUAL_ENV", "PYTHONHOME"):
        env.pop(key, None)
    env["PYTHONPATH"] = str(ADAPTERS)
    env["PYTHONUNBUFFERED"] = "1"
    # Compiled bytecode for every library, as installed packages have it (see _venvs).
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(PYCACHE)
    env.update(extra)
    return env


def run_json(python: str, args: list[str], env: dict[str, str], timeout: float) -> dict:
    """Run ``driver.py ARGS`` and parse the last line of its stdout as JSON."""
    proc = subprocess.run(
        [python, str(DRIVER), *args],
        cwd=ADAPTERS,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if proc.returncode != 0:
        raise BenchError(f"{' '.join(args)} failed:\n{proc.stderr[-2000:]}")
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
    return json.loads(lines[-1]) if lines else {}


def tree_rss_kb(sid: int) -> int:
    """Sum of RSS over every process in session ``sid`` (the worker and its children)."""
    total = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        # fields[0] is state (field 3); session is field 6, rss field 24.
        if int(fields[3]) == sid:
            total += int(fields[21]) * PAGE_KB
    return total


class Worker:
    """A peer's worker process (``driver.py PEER worker``) in its own session."""

    def __init__(self, python: str, peer: str, env: dict[str, str], log: Path) -> None:
        self._log = log
        self._logf = open(log, "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [python, str(DRIVER), peer, "worker"],
            cwd=ADAPTERS,
            env=env,
            stdout=self._logf,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.peak_kb = 0
        self._stop = threading.Event()
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._sampler.start()

    def _sample(self) -> None:
        while not self._stop.wait(0.1):
            self.peak_kb = max(self.peak_kb, self.rss_kb())

    def rss_kb(self) -> int:
        return tree_rss_kb(self.proc.pid)

    def log_tail(self) -> str:
        try:
            return self._log.read_text(errors="replace")[-2000:]
        except OSError:
            return ""

    def wait_for(self, path: Path, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        while not path.exists():
            if self.proc.poll() is not None:
                raise BenchError(f"worker exited with {self.proc.returncode}:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise BenchError(f"timed out after {timeout:.0f}s waiting for {path.name}")
            time.sleep(0.02)
        return json.loads(path.read_text())

    def stop(self) -> None:
        self._stop.set()
        pgid = self.proc.pid
        if self.proc.poll() is None:
            try:
                os.killpg(pgid, signal.SIGTERM)
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(pgid, signal.SIGKILL)
                self.proc.wait(timeout=10)
            except ProcessLookupError:
                pass
        # Children that outlived the parent (same process group).
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)
        self._logf.close()

    def __enter__(self) -> Worker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
