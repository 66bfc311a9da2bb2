"""Install the ``omniq-memo`` example distribution into this test run: its sources and a
``.dist-info`` built from its pyproject (name, version, entry points) on ``sys.path``,
which is all ``importlib.metadata`` and the import system look at. Nothing else in the
repository knows the distribution."""

from __future__ import annotations

import sys
import tempfile
import tomllib
from pathlib import Path

from omniq.storage import reload_backends

HERE = Path(__file__).resolve().parent
_SITE = tempfile.TemporaryDirectory(prefix="omniq-memo-site-")


def _install(site: Path) -> None:
    project = tomllib.loads((HERE / "pyproject.toml").read_text())["project"]
    name, version = project["name"], project["version"]
    info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(
        "".join(
            f"[{group}]\n" + "".join(f"{k} = {v}\n" for k, v in table.items()) + "\n"
            for group, table in project["entry-points"].items()
        )
    )
    for path in (str(HERE / "src"), str(site)):
        if path not in sys.path:
            sys.path.insert(0, path)
    reload_backends()


_install(Path(_SITE.name))
