"""Fail when a distribution declares a dependency on an OmniQ distribution above it.

The order is architecture.md section 1: each distribution may depend only on those
listed before it. Sibling pins must be compatible ranges (a lower and an upper bound).
import-linter checks the imports; this checks what the pyprojects declare, so a wheel
never pulls in a higher layer.
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

ORDER = [
    "omniq-models",
    "omniq-config",
    "omniq-serialization",
    "omniq-storage",
    "omniq-events",
    "omniq-workers",
    "omniq-core",
    "omniq-web",
    "omniq-testing",
    "omniq-contrib",
    "omniq",
]
REQ = re.compile(r"^\s*([A-Za-z0-9_.-]+)\s*(\[[^\]]*\])?\s*(.*)$")


def main() -> int:
    root = Path(__file__).resolve().parent.parent
    problems: list[str] = []
    seen: set[str] = set()
    for pyproject in sorted(root.glob("packages/*/pyproject.toml")):
        meta = tomllib.loads(pyproject.read_text())["project"]
        name = meta["name"]
        seen.add(name)
        if name not in ORDER:
            problems.append(f"{name}: not in the layer order of scripts/check_layers.py")
            continue
        deps = list(meta.get("dependencies", []))
        for extra in meta.get("optional-dependencies", {}).values():
            deps.extend(extra)
        for dep in deps:
            m = REQ.match(dep.split(";")[0])
            if not m:
                continue
            dep_name, spec = m.group(1).lower().replace("_", "-"), m.group(3)
            if not dep_name.startswith("omniq"):
                continue
            if dep_name not in ORDER:
                problems.append(f"{name}: depends on unknown distribution {dep_name}")
            elif ORDER.index(dep_name) >= ORDER.index(name):
                problems.append(f"{name}: depends upward on {dep_name}")
            if not (">=" in spec and "<" in spec.replace("<=", "")):
                problems.append(f"{name}: pin on {dep_name} must be a range like >=0.1,<0.2")
    for problem in problems:
        print(f"layer check: {problem}", file=sys.stderr)
    if not problems:
        print(f"layer check: {len(seen)} distributions, dependencies point one way")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
