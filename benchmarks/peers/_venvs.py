"""One cached virtual environment per peer library, pinned, under ``.bench-venvs/``.

Idempotent: a venv is rebuilt only when its pin list changes (a ``.pins`` marker
records what was installed). The peers never touch the workspace's own venv.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("BENCH_VENV_DIR", ROOT / ".bench-venvs"))
PYCACHE = CACHE / "pycache"
"""Bytecode of every library (peers and workspace), shared through PYTHONPYCACHEPREFIX:
each process imports compiled modules, as after a ``pip install``, even where the
environment sets PYTHONDONTWRITEBYTECODE (compiling from source on every import costs
each worker ~15 MB of resident memory and seconds of start-up)."""

# Pinned peer versions; bump deliberately (a venv is rebuilt when its pins change).
PINS: dict[str, list[str]] = {
    "celery": ["celery[redis]==5.7.0"],
    "dramatiq": ["dramatiq[redis]==2.2.1"],
    "rq": ["rq==2.12.0"],
    "huey": ["huey==3.5.4", "redis==8.1.0"],
    "arq": ["arq==0.28.0"],
    "taskiq": ["taskiq==0.13.0", "taskiq-redis==1.2.4"],
    # saq 0.26.4 imports typing_extensions without declaring it.
    "saq": ["saq==0.26.4", "redis==8.1.0", "typing_extensions==4.15.0"],
    "procrastinate": ["procrastinate==3.10.0", "psycopg[binary]==3.3.9"],
}


def _uv() -> str:
    uv = shutil.which("uv")
    if uv is None:
        raise SystemExit("uv is required (scripts/bench installs it)")
    return uv


def python_for(venv: str | None) -> str:
    """The interpreter that runs a peer's adapter: its own venv, or the workspace's."""
    if venv is None:
        return sys.executable
    return str(CACHE / venv / "bin" / "python")


def ensure(venv: str, *, quiet: bool = True) -> str:
    """Create (once) and return the python of ``venv``'s environment."""
    pins = PINS[venv]
    path = CACHE / venv
    marker = path / ".pins"
    python = path / "bin" / "python"
    wanted = "\n".join(pins)
    if python.exists() and marker.exists() and marker.read_text() == wanted:
        return str(python)
    env = dict(os.environ, UV_PYTHON_DOWNLOADS="never")
    env.pop("VIRTUAL_ENV", None)
    q = ["-q"] if quiet else []
    py = f"{sys.version_info.major}.{sys.version_info.minor}"
    subprocess.run([_uv(), "venv", *q, "--clear", "-p", py, str(path)], check=True, env=env)
    subprocess.run([_uv(), "pip", "install", *q, "-p", str(python), *pins], check=True, env=env)
    marker.write_text(wanted)
    return str(python)


def compile_bytecode(python: str) -> None:
    """Precompile ``python``'s site-packages (and, for the workspace, its sources) into
    PYCACHE, once per run; errors in files that never import are ignored."""
    code = (
        "import compileall, site, sys; "
        "paths = site.getsitepackages() + [p for p in sys.path if p.endswith('/src')]; "
        "[compileall.compile_dir(p, quiet=2, workers=0) for p in paths]"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE",)}
    env["PYTHONPYCACHEPREFIX"] = str(PYCACHE)
    env.pop("VIRTUAL_ENV", None)
    subprocess.run([python, "-c", code], check=False, env=env, stdout=subprocess.DEVNULL)
