"""Run the Python examples of docs/scheduling.md, in order, in one namespace."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "scheduling.md"


def blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)


def test_scheduling_doc_examples_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    found = blocks()
    assert len(found) >= 4
    namespace: dict[str, object] = {"__name__": "scheduling_doc"}
    for i, code in enumerate(found):
        exec(compile(code, f"{DOC.name}[block {i}]", "exec"), namespace)
