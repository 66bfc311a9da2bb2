"""The ``omniq`` console script runs ``omniq worker`` without Typer or rich (a worker
process carries only what working needs), with the Typer command's options, output and
errors; everything else it hands to the Typer application."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from omniq.core._entry import parse_worker_argv

SCRIPT = str(Path(sys.executable).parent / "omniq")
TASKS = Path(__file__).resolve().parent / "entry_tasks.py"

LOADED = (
    "import atexit, sys\n"
    "atexit.register(lambda: print('loaded:', sorted(m for m in {mods!r} if m in sys.modules)))\n"
    "sys.argv = ['omniq', *sys.argv[1:]]\n"
    "from omniq.core._entry import main\n"
    "main()\n"
)


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMNIQ_")}
    env["PYTHONPATH"] = os.pathsep.join([str(TASKS.parent), env.get("PYTHONPATH", "")])
    return env


def _run(argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=120, check=False
    )


def test_the_worker_options_parse_like_the_typer_command() -> None:
    argv = ["--debug", "worker", "-q", "a", "--queue=b", "-qc", "-c", "5", "--burst"]
    argv += ["--allow", "x", "--allow=y,z", "--no-scheduler", "-p2", "--metrics-port", "9"]
    argv += ["--metrics-host", "0.0.0.0", "-u", "redis://h/0", "-w", "thread", "--app=m:oq"]
    argv += ["--store-wait", "2.5"]
    assert parse_worker_argv(argv) == (
        True,
        {
            "queues": ["a", "b", "c"],
            "concurrency": 5,
            "burst": True,
            "allow": ["x", "y,z"],
            "scheduler": False,
            "processes": 2,
            "metrics_port": 9,
            "metrics_host": "0.0.0.0",
            "url": "redis://h/0",
            "worker_type": "thread",
            "app_spec": "m:oq",
            "store_wait": 2.5,
        },
    )
    assert parse_worker_argv(["worker"]) == (False, {})


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["--version"],
        ["status"],
        ["worker", "--help"],
        ["worker", "--nope"],
        ["worker", "-c", "many"],
        ["worker", "--store-wait", "soon"],
        ["worker", "--burst=yes"],
        ["worker", "-q"],
        ["worker", "extra"],
        ["worker", "--debug"],
    ],
)
def test_anything_else_goes_to_the_typer_application(argv: list[str]) -> None:
    assert parse_worker_argv(argv) is None


def test_a_worker_from_the_console_script_loads_neither_typer_nor_rich(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'q.db'}"
    enq = _run([SCRIPT, "enqueue", "entry_tasks:double", "21", "-u", url], tmp_path)
    assert enq.returncode == 0, enq.stderr
    mods = ("typer", "rich", "click", "omniq.core.cli")
    code = LOADED.format(mods=mods)
    out = _run([sys.executable, "-c", code, "worker", "--burst", "-u", url], tmp_path)
    assert out.returncode == 0, out.stderr
    assert f"omniq worker on {url} queues=['default']" in out.stdout
    assert "done: 1 succeeded, 0 failed, 0 expired, 0 handed back" in out.stdout
    assert "loaded: []" in out.stdout
    res = _run([SCRIPT, "result", enq.stdout.strip(), "-u", url], tmp_path)
    assert "42" in res.stdout and "success" in res.stdout


@pytest.mark.parametrize(
    "args",
    [
        ["worker", "--burst", "--concurrency", "0", "-u", "memory://"],
        ["worker", "--burst", "--app", "no_such_entry_module:oq"],
        ["worker", "--burst", "--allow", ","],
        ["worker", "--burst", "-c", "many"],
    ],
)
def test_worker_errors_read_the_same_as_the_typer_command(args: list[str], tmp_path: Path) -> None:
    lean = _run([SCRIPT, *args], tmp_path)
    typer = _run([sys.executable, "-m", "omniq.core.cli", *args], tmp_path)
    assert lean.returncode == typer.returncode == 2, (lean.stderr, typer.stderr)
    assert lean.stderr == typer.stderr.replace("python -m omniq.core.cli", "omniq")
    debug = _run([SCRIPT, "--debug", *args], tmp_path)
    assert debug.returncode == 2
    if "-c" not in args:  # a usage error has no traceback
        assert "Traceback (most recent call last)" in debug.stderr
        assert debug.stderr.rstrip().splitlines()[-1] == lean.stderr.strip()


def test_worker_help_is_the_typer_commands(tmp_path: Path) -> None:
    lean = _run([SCRIPT, "worker", "--help"], tmp_path)
    typer = _run([sys.executable, "-m", "omniq.core.cli", "worker", "--help"], tmp_path)
    assert lean.returncode == 0 and "--no-scheduler" in lean.stdout
    shown = typer.stdout.replace("python -m omniq.core.cli", "omniq")
    assert [ln.rstrip() for ln in lean.stdout.splitlines()] == [
        ln.rstrip() for ln in shown.splitlines()
    ]
