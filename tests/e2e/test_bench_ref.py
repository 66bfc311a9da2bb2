"""The benchmark's ``--omniq-ref REV``: OmniQ run from a git revision's sources really
imports those sources (an A/B that silently ran the working tree twice would show no
difference for any change)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from benchmarks.peers import _workloads


def test_omniq_at_a_revision_imports_that_revisions_sources() -> None:
    peer = _workloads.omniq_at("HEAD")
    export = Path(peer.env["PYTHONPATH"].split(":")[1]).parents[2]
    try:
        out = subprocess.run(
            [
                peer.python(),
                "-c",
                "import omniq.core, omniq.storage._backends.redis._backend as r; print(r.__file__)",
            ],
            env=peer.environ(),
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        assert Path(out).is_relative_to(export), out
        assert peer.name == "omniq@HEAD" and peer.engine == "redis"
    finally:
        shutil.rmtree(export, ignore_errors=True)
