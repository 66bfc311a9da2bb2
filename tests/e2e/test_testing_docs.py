"""Run docs/testing.md: its ``# file: NAME`` blocks become files of a temporary project,
its other Python blocks run in order in one namespace, and the test modules among the
files run under pytest in a subprocess (the plugin loaded through its entry point)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from omniq.models import get_clock, set_clock

DOC = Path(__file__).resolve().parents[2] / "docs" / "testing.md"


def blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)


@pytest.mark.slow  # runs pytest in a subprocess
def test_testing_doc_examples_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "myapp", raising=False)
    code_blocks: list[str] = []
    files: list[str] = []
    for code in blocks():
        first, _, rest = code.partition("\n")
        if first.startswith("# file: "):
            name = first.removeprefix("# file: ").strip()
            (tmp_path / name).write_text(rest)
            files.append(name)
        else:
            code_blocks.append(code)
    assert "myapp.py" in files and len(code_blocks) >= 4
    namespace: dict[str, object] = {"__name__": "testing_doc"}
    clock = get_clock()
    try:
        for i, code in enumerate(code_blocks):
            exec(compile(code, f"{DOC.name}[block {i}]", "exec"), namespace)
    finally:
        set_clock(clock)  # inline retries without a ManualClock moved the wall clock
        sys.modules.pop("myapp", None)

    tests = [name for name in files if name.startswith("test_")]
    assert tests
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMNIQ_", "PYTEST_"))}
    options = ["-q", "-p", "no:cacheprovider", "-c", os.devnull]
    options += ["--rootdir", str(tmp_path), "--confcutdir", str(tmp_path)]
    run = subprocess.run(
        [sys.executable, "-m", "pytest", *options, *tests],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert re.search(r"^4 passed", run.stdout, re.M), run.stdout
