"""Build the docs site (``mkdocs build --strict``: a broken link, a missing page or an
unresolved reference fails) and check that the API reference covers every public name:
each name in the ``__all__`` of every public module of the portions (no ``_`` in its
dotted name), and every name the umbrella ``omniq`` re-exports (docs/reference/index.md).

    uv run python scripts/check_docs.py [--site DIR]
"""

from __future__ import annotations

import argparse
import ast
import importlib
import os
import pkgutil
import subprocess
import sys
import tempfile
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PORTIONS = [
    "omniq.models",
    "omniq.config",
    "omniq.serialization",
    "omniq.storage",
    "omniq.events",
    "omniq.workers",
    "omniq.queue",
    "omniq.core",
    "omniq.web",
    "omniq.contrib",
    "omniq.testing",
]


def inventory(site: Path) -> set[str]:
    """The object names in the site's ``objects.inv`` (Sphinx inventory, version 2)."""
    raw = (site / "objects.inv").read_bytes().split(b"\n", 4)[4]
    return {line.split(" ", 1)[0] for line in zlib.decompress(raw).decode().splitlines()}


def public_modules() -> list[str]:
    found = []
    for portion in PORTIONS:
        found.append(portion)
        package = importlib.import_module(portion)
        for info in pkgutil.walk_packages(package.__path__, portion + "."):
            if not any(part.startswith("_") for part in info.name.split(".")):
                found.append(info.name)
    return found


def umbrella_all() -> list[str]:
    """The umbrella's ``__all__``, read from its source (in the workspace ``omniq`` is
    the namespace of the portions, not the umbrella package)."""
    tree = ast.parse((ROOT / "packages/omniq/src/omniq/__init__.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets
        ):
            return [str(v) for v in ast.literal_eval(node.value)]
    raise SystemExit("the umbrella has no __all__")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--site", help="build into this folder (default: a temporary one)")
    ns = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        site = Path(ns.site or tmp)
        subprocess.run(
            ["mkdocs", "build", "--strict", "--quiet", "--site-dir", str(site)],
            cwd=ROOT,
            check=True,
            env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        )
        names = inventory(site)
    missing = []
    count = 0
    for module_name in public_modules():
        module = importlib.import_module(module_name)
        public = getattr(module, "__all__", None)
        if public is None:
            count += 1
            if module_name not in names:
                missing.append(module_name)
            continue
        for name in public:
            count += 1
            if f"{module_name}.{name}" not in names:
                missing.append(f"{module_name}.{name}")
    umbrella = (ROOT / "docs" / "reference" / "index.md").read_text()
    for name in umbrella_all():
        count += 1
        if f"`{name}`" not in umbrella:
            missing.append(f"omniq.{name} (docs/reference/index.md)")
    if missing:
        print("the API reference misses: " + ", ".join(missing), file=sys.stderr)
        return 1
    print(f"  docs site built (strict); the API reference has all {count} public names")
    return 0


if __name__ == "__main__":
    sys.exit(main())
