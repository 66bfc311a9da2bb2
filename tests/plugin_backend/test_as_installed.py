"""The example distribution installed for real: into a fresh virtual environment with
omniq-storage[testing], its own tests pass there, with none of this repository's
conftests loaded (only its entry point makes memo:// known)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent


@pytest.mark.slow
def test_installed_distribution_passes_its_conformance_tests(tmp_path: Path) -> None:
    uv = shutil.which("uv") or str(Path.home() / ".local/bin/uv")
    venv = tmp_path / "venv"
    env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never"}
    env.pop("VIRTUAL_ENV", None)
    py = f"{sys.version_info.major}.{sys.version_info.minor}"
    subprocess.run([uv, "venv", "-q", "--python", py, str(venv)], check=True, env=env)
    python = str(venv / "bin" / "python")
    packages = ROOT / "packages"
    editable = ["omniq-models", "omniq-config", "omniq-storage[testing]"]
    install = [uv, "pip", "install", "-q", "--offline", "--python", python, str(HERE)]
    for name in editable:
        install += ["-e", str(packages / name)]
    subprocess.run(install, check=True, env=env)
    tests = str(HERE / "tests")
    pytest_args = ["-q", "-p", "no:cacheprovider", "-c", os.devnull, tests]
    pytest_args += ["--rootdir", tests, "--confcutdir", tests]
    run = subprocess.run(
        [python, "-m", "pytest", *pytest_args],
        check=False,
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert " passed" in run.stdout and " failed" not in run.stdout, run.stdout
