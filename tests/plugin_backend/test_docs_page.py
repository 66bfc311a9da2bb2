"""docs/third-party-backends.md shows this example distribution file by file: every
file it shows is the real one, byte for byte, and every file of the distribution is
shown. The files' tests are what this folder runs (tests/ here, in the repository's run,
and test_as_installed.py, in a fresh virtual environment), so the page cannot describe
a backend that does not pass the conformance suite."""

from __future__ import annotations

import re
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
PAGE = ROOT / "docs" / "third-party-backends.md"
SHOWN = re.compile(r"<!-- file: (\S+) -->\n```\w*\n(.*?)```", re.S)


def test_the_page_shows_the_example_files_as_they_are() -> None:
    shown = dict(SHOWN.findall(PAGE.read_text()))
    assert shown, "no file blocks on the page"
    for path, text in shown.items():
        assert text == (ROOT / path).read_text(), f"{path} differs from the page"
    files = [HERE / "pyproject.toml", *HERE.glob("src/**/*.py"), *HERE.glob("tests/*.py")]
    expected = {str(p.relative_to(ROOT)) for p in files}
    assert set(shown) == expected


def test_the_page_lists_the_layout_it_shows() -> None:
    text = PAGE.read_text()
    for path in SHOWN.findall(text):
        assert Path(path[0]).name in text.split("## The distribution")[0]
