"""The CI and release workflows say what docs/packaging.md says (offline; the schema
validation of both files is a step of scripts/test)."""

from __future__ import annotations

import fnmatch
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
import release  # noqa: E402


def workflow(name: str) -> dict[Any, Any]:
    data: dict[Any, Any] = yaml.safe_load((ROOT / ".github/workflows" / name).read_text())
    data["on"] = data.pop(True, data.get("on"))  # YAML 1.1 reads the key `on` as True
    return data


def test_ci_runs_scripts_test_on_each_python_with_the_three_engines() -> None:
    ci = workflow("ci.yml")
    job = ci["jobs"]["test"]
    assert job["strategy"]["matrix"]["python"] == ["3.11", "3.12", "3.13"]
    assert {"postgres", "redis", "nats"} <= set(job["services"])
    ports = {p for s in job["services"].values() for p in s["ports"]}
    assert ports == {"5432:5432", "6379:6379", "4222:4222"}
    runs = [s.get("run", "") for s in job["steps"]]
    assert "bash scripts/test" in runs
    assert any("jetstream" in r for r in runs)  # NATS restarted with JetStream
    checkout = next(s for s in job["steps"] if s.get("uses", "").startswith("actions/checkout"))
    assert checkout["with"]["fetch-depth"] == 0  # older versions for the lowest gate


def test_every_distribution_tag_starts_the_release_and_only_pypi_names_reach_pypi() -> None:
    rel = workflow("release.yml")
    globs = rel["on"]["push"]["tags"]
    for name in release.load(ROOT):
        assert any(fnmatch.fnmatch(f"{name}-v1.2.3", g) for g in globs), name
    assert not any(fnmatch.fnmatch("v1.2.3", g) for g in globs)
    jobs = rel["jobs"]
    assert jobs["pypi"]["if"] == "needs.build.outputs.index == 'pypi'"
    assert jobs["pypi"]["permissions"] == {"id-token": "write"}
    pypi_steps = jobs["pypi"]["steps"]
    guard = next(i for i, s in enumerate(pypi_steps) if "check-name" in s.get("run", ""))
    upload = next(i for i, s in enumerate(pypi_steps) if "pypi-publish" in s.get("uses", ""))
    assert guard < upload
    assert release.PUBLISH["omniq"] == "github"
    assert set(release.PUBLISH) == set(release.load(ROOT))
    build = " ".join(s.get("run", "") for s in jobs["build"]["steps"])
    for needed in ("check-tag", "uv build --package", "check_wheels.sh"):
        assert needed in build


def test_both_files_match_the_github_workflow_schema() -> None:
    files = [str(p) for p in sorted((ROOT / ".github/workflows").glob("*.yml"))]
    assert len(files) == 2
    out = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema",
         "vendor.github-workflows", *files],
        check=False,
        capture_output=True,
        text=True,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
