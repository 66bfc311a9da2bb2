"""Every install command in the README, docs, scripts and CI that names the umbrella pins
its current version (``omniq==X.Y.Z``, as packages/omniq/pyproject.toml says): on the
public index ``omniq`` is an unrelated project, and an unpinned ``omniq``
(``pip install omniq``, ``"omniq[all]"``) resolves to it even with ``--find-links`` to
our wheels. See docs/packaging.md, "Names".

    uv run python scripts/check_install_paths.py
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FILES = [
    "README.md",
    "docs/**/*.md",
    "packages/*/README.md",
    "scripts/*",
    ".ci/run",
    ".github/workflows/*.yml",
]
INSTALL = re.compile(
    r"\b(?:pip3? install|pip download|uv pip install|uv add|uv tool install|pipx install)\b[^\n`#]*"
)
PINNED = re.compile(r"""(?<![\w./-])omniq(?:\[[^\]]*\])?==(\d[\w.]*)""")
UMBRELLA = re.compile(r"""(?<![\w./-])['"]?omniq(\[[^\]]*\])?(?![\w.-])(?!\s*==)(?!\[[^\]]*\]==)""")


def offenders() -> list[str]:
    project = tomllib.loads((ROOT / "packages/omniq/pyproject.toml").read_text())["project"]
    version = project["version"]
    found = []
    for pattern in FILES:
        for path in sorted(ROOT.glob(pattern)):
            if not path.is_file() or path.name == Path(__file__).name:
                continue
            try:
                text = path.read_text()
            except UnicodeDecodeError:
                continue
            for number, line in enumerate(text.splitlines(), 1):
                where = f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
                for command in INSTALL.finditer(line):
                    if UMBRELLA.search(command.group(0)):
                        found.append(where)
                found += [
                    f"{where} (the umbrella is {version})"
                    for pin in PINNED.findall(line)
                    if pin.rstrip(".") != version and "$" not in line
                ]
    return found


def main() -> int:
    bad = offenders()
    if bad:
        print("install commands naming the umbrella without its version:", *bad, sep="\n  ")
        return 1
    print("  every install command that names the umbrella pins omniq==<version>")
    return 0


if __name__ == "__main__":
    sys.exit(main())
