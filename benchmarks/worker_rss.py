"""Idle memory of the ``omniq worker`` command as users run it: installed from the built
wheels into a fresh venv (``pip install omniq``, bytecode compiled at install), started
on each engine in its own namespace, RSS of its process tree read once it is idle.

    uv run python -m benchmarks.worker_rss              # build the wheels; Redis, PostgreSQL
    uv run python -m benchmarks.worker_rss --wheels DIR --keep /tmp/rss --engines redis
    uv run python -m benchmarks.worker_rss --venv .venv # the workspace's own venv

Prints one line per engine: RSS after ``--idle`` seconds (default 3) past the banner,
and the modules a few heavy libraries brought in (from ``-X importtime``, loaded once
at start). ``--with PKG`` adds a package to the venv (e.g. ``opentelemetry-sdk``, which
redis-py imports when it is installed).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from omniq.storage.testing.servers import drop_namespace, unique_url

ROOT = Path(__file__).resolve().parents[1]
WATCH = ("typer", "rich", "click", "pydantic", "opentelemetry", "croniter", "dill")


def _uv(*args: str) -> None:
    env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never"}
    subprocess.run(["uv", *args], check=True, cwd=ROOT, env=env)


def _venv(wheels: Path | None, dest: Path, extra: list[str]) -> Path:
    if wheels is None:
        wheels = dest / "wheels"
        _uv("build", "--all-packages", "--no-sources", "--wheel", "-q", "-o", str(wheels))
    version = next(wheels.glob("omniq-[0-9]*.whl")).name.split("-")[1]
    venv = dest / "venv"
    _uv("venv", "-q", "--python", sys.executable, str(venv))
    python = str(venv / "bin" / "python")
    _uv("pip", "install", "-q", "--compile-bytecode", "--python", python,
        "--find-links", str(wheels), f"omniq=={version}", *extra)  # fmt: skip
    return venv


def _tree_rss_kb(sid: int) -> int:
    total = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry.name}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        if int(fields[3]) == sid:
            total += int(fields[21]) * (os.sysconf("SC_PAGE_SIZE") // 1024)
    return total


def measure(
    venv: Path, engine: str, idle: float, *, profile: bool = False, pythonpath: str = ""
) -> tuple[float, dict[str, int]]:
    """(idle RSS in MB, modules loaded per watched library) of one ``omniq worker``;
    the modules only with ``profile`` (``-X importtime``, whose output costs memory)."""
    url = unique_url(engine)
    log = Path(tempfile.mkstemp(prefix="omniq-rss-", suffix=".log")[1])
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMNIQ_", "PYTHON"))}
    if profile:
        env["PYTHONPROFILEIMPORTTIME"] = "1"
    command = [str(venv / "bin" / "omniq")]
    if pythonpath:  # sources of another revision first; run its Typer CLI as a module
        env["PYTHONPATH"] = pythonpath
        command = [str(venv / "bin" / "python"), "-m", "omniq.core.cli"]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*command, "worker", "-u", url, "-q", "rss"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=tempfile.gettempdir(),
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 60
        while b"omniq worker on" not in log.read_bytes():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"worker did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.05)
        time.sleep(idle)  # let it settle: claim loop waiting, scheduler idle
        rss = _tree_rss_kb(proc.pid) / 1024
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)
        drop_namespace(url)
    loaded: dict[str, int] = {}
    for line in log.read_text().splitlines():
        if line.startswith("import time:") and "|" in line:
            top = line.rsplit("|", 1)[1].strip().split(".")[0]
            if top in WATCH:
                loaded[top] = loaded.get(top, 0) + 1
    log.unlink()
    return rss, loaded


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--wheels", type=Path, help="use the wheels in DIR instead of building")
    ap.add_argument("--venv", type=Path, help="an existing venv with omniq installed")
    ap.add_argument("--keep", type=Path, help="build the venv here and keep it")
    ap.add_argument("--with", dest="extra", action="append", default=[], metavar="PKG")
    ap.add_argument("--engines", default="redis,postgresql")
    ap.add_argument("--idle", type=float, default=3.0)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument(
        "--pythonpath",
        default="",
        help="A/B: put these sources first (e.g. another revision's packages/*/src) and run "
        "python -m omniq.core.cli worker",
    )
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="omniq-rss-") as tmp:
        venv = args.venv.resolve() if args.venv else None
        if venv is None:
            dest = args.keep or Path(tmp)
            dest.mkdir(parents=True, exist_ok=True)
            venv = _venv(args.wheels, dest, args.extra)
        for engine in args.engines.split(","):
            pp = args.pythonpath
            mbs = sorted(
                measure(venv, engine, args.idle, pythonpath=pp)[0] for _ in range(args.runs)
            )
            loaded = measure(venv, engine, 0.0, profile=True, pythonpath=pp)[1]
            print(
                f"{engine}: idle RSS {mbs[len(mbs) // 2]:.1f} MB (median of {len(mbs)}: "
                f"{', '.join(f'{m:.1f}' for m in mbs)}); modules of {', '.join(WATCH)}: "
                f"{loaded or 'none'}"
            )


if __name__ == "__main__":
    main()
