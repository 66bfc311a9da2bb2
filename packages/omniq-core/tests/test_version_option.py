"""``omniq --version`` names every installed OmniQ distribution and the Python."""

from __future__ import annotations

import platform
import subprocess
import sys

LIST_DISTRIBUTIONS = """
from importlib.metadata import distributions
for d in distributions():
    name = (d.metadata["Name"] or "").lower().replace("_", "-")
    if name == "omniq" or name.startswith("omniq-"):
        print(name, d.version)
"""


def test_version_lists_each_installed_distribution_and_python() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "omniq.core.cli", "--version"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.splitlines()
    # what a fresh interpreter of this environment has installed (this test process may
    # have test-only distributions on its sys.path)
    installed = subprocess.run(
        [sys.executable, "-c", LIST_DISTRIBUTIONS], check=True, capture_output=True, text=True
    ).stdout.splitlines()
    assert {"omniq-core", "omniq-models", "omniq-storage"} <= {i.split()[0] for i in installed}
    assert out[:-1] == sorted(set(installed))
    assert out[-1] == f"Python {platform.python_version()} ({platform.python_implementation()})"


def test_help_renders_for_every_command() -> None:
    """The installed typer and click agree (a mismatch fails only when help is drawn)."""
    import typer

    from omniq.core.cli import app

    group = typer.main.get_command(app)
    commands = [[name] for name in getattr(group, "commands", {})]
    assert len(commands) >= 8, commands
    for argv in ([], *commands):
        out = subprocess.run(
            [sys.executable, "-m", "omniq.core.cli", *argv, "--help"],
            check=True,
            capture_output=True,
            text=True,
            env={"COLUMNS": "120", "PATH": ""},
        ).stdout
        assert "Usage:" in out, (argv, out)


def test_installing_omniq_core_installs_the_omniq_command() -> None:
    from pathlib import Path

    script = Path(sys.executable).parent / "omniq"
    out = subprocess.run([str(script), "--help"], check=True, capture_output=True, text=True)
    assert "Usage:" in out.stdout
