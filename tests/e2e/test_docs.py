"""Run the Python examples of the README and docs/quickstart.md, concepts.md,
configuration.md, security.md, dashboard.md, integrations.md, flow-control.md and
workflows.md."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[2] / "docs"
FILES = [
    "../README.md",
    "quickstart.md",
    "concepts.md",
    "configuration.md",
    "security.md",
    "dashboard.md",
    "integrations.md",
    "flow-control.md",
    "workflows.md",
]


@pytest.mark.parametrize("name", FILES)
def test_doc_examples_run(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    text = (DOCS / name).read_text()
    namespace: dict[str, object] = {"__name__": f"doc_{name}"}
    for i, code in enumerate(re.findall(r"```python\n(.*?)```", text, flags=re.S)):
        exec(compile(code, f"{name}[block {i}]", "exec"), namespace)


def test_configuration_lists_every_setting() -> None:
    from omniq.config import FIELD_RULES

    text = (DOCS / "configuration.md").read_text()
    missing = [n for n in FIELD_RULES if f"OMNIQ_{n.upper()}" not in text]
    assert missing == []
