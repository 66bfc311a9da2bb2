"""scripts/release on a copy of the distributions' pyproject.toml and CHANGELOG.md files."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "release.py"


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    for folder in (ROOT / "packages").iterdir():
        if (folder / "pyproject.toml").exists():
            (tmp_path / "packages" / folder.name).mkdir(parents=True)
            for name in ("pyproject.toml", "CHANGELOG.md"):
                shutil.copy(folder / name, tmp_path / "packages" / folder.name / name)
    return tmp_path


def release(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--root", str(repo), *args],
        check=False,
        capture_output=True,
        text=True,
    )


def project(repo: Path, folder: str) -> dict[str, object]:
    data: dict[str, object] = tomllib.loads(
        (repo / "packages" / folder / "pyproject.toml").read_text()
    )["project"]
    return data


def test_patch_release_sets_version_and_dates_the_changelog(repo: Path) -> None:
    before = str(project(repo, "omniq-events")["version"])
    out = release(repo, "omniq-events", "patch", "--date", "2030-01-02")
    assert out.returncode == 0, out.stderr
    after = str(project(repo, "omniq-events")["version"])
    major, minor, patch = before.split(".")
    assert after == f"{major}.{minor}.{int(patch) + 1}"
    log = (repo / "packages/omniq-events/CHANGELOG.md").read_text()
    assert log.splitlines()[2] == f"## {after} — 2030-01-02"
    assert "unreleased" not in log.split("\n## ", 2)[1].lower()
    # the tag the release workflow gets is accepted; a wrong one is not
    ok = release(repo, "check-tag", f"omniq-events-v{after}")
    assert ok.returncode == 0, ok.stderr
    assert f"version={after}" in ok.stdout and "index=pypi" in ok.stdout
    wrong = release(repo, "check-tag", f"omniq-events-v{before}")
    assert wrong.returncode == 1 and "pyproject.toml says" in wrong.stderr
    # released already: a second release without a new unreleased entry is refused
    again = release(repo, "omniq-events", "patch")
    assert again.returncode == 1 and "no unreleased entry" in again.stderr


def test_a_bump_outside_a_siblings_range_is_refused_and_changes_nothing(repo: Path) -> None:
    before = {p: p.read_text() for p in repo.rglob("*") if p.is_file()}
    out = release(repo, "omniq-models", "minor")
    assert out.returncode == 1
    assert "outside a sibling's range" in out.stderr and "omniq-config requires" in out.stderr
    assert {p: p.read_text() for p in repo.rglob("*") if p.is_file()} == before


def test_the_umbrellas_range_follows_a_breaking_release(repo: Path) -> None:
    # The distributions above omniq-core (web, contrib, testing) widen their own range
    # on it first, as a sibling would before a breaking core release.
    for above in ("omniq-web", "omniq-contrib", "omniq-testing"):
        pyproject = repo / f"packages/{above}/pyproject.toml"
        text, n = re.subn(
            r'"omniq-core>=([\d.]+),<[\d.]+"', r'"omniq-core>=\1,<1"', pyproject.read_text()
        )
        assert n == 1, above
        pyproject.write_text(text)
    out = release(repo, "omniq-core", "minor", "--date", "2030-01-02")
    assert out.returncode == 0, out.stderr
    version = str(project(repo, "omniq-core")["version"])
    minor = int(version.split(".")[1])
    deps = [d for d in project(repo, "omniq")["dependencies"] if d.startswith("omniq-core")]  # type: ignore[attr-defined]
    assert deps == [f"omniq-core[uvloop]>={version},<0.{minor + 1}"]
    umbrella_log = (repo / "packages/omniq/CHANGELOG.md").read_text()
    assert f"- Requires omniq-core>={version},<0.{minor + 1}." in umbrella_log


def test_the_tag_must_name_a_dated_changelog_entry(repo: Path) -> None:
    version = project(repo, "omniq-storage")["version"]
    out = release(repo, "check-tag", f"omniq-storage-v{version}")
    assert out.returncode == 1 and "no dated entry" in out.stderr
    assert release(repo, "check-tag", "v1.0").returncode == 1
    assert release(repo, "check-tag", "omniq-nothing-v1.0.0").returncode == 1


def test_the_umbrella_is_never_published_to_pypi_and_a_foreign_name_is_refused(
    repo: Path, tmp_path: Path
) -> None:
    ours = "https://github.com/example/omniq"
    umbrella = release(repo, "check-name", "omniq", "--repository", ours, "--pypi-json", "")
    assert umbrella.returncode == 1 and "not published to PyPI" in umbrella.stderr
    free = release(repo, "check-name", "omniq-models", "--repository", ours, "--pypi-json", "")
    assert free.returncode == 0 and "free on PyPI" in free.stdout
    foreign = tmp_path / "foreign.json"
    foreign.write_text(json.dumps({"info": {"project_urls": {"Home": "https://x.test/other"}}}))
    taken = release(
        repo, "check-name", "omniq-models", "--repository", ours, "--pypi-json", str(foreign)
    )
    assert taken.returncode == 1 and "another project" in taken.stderr
    mine = tmp_path / "mine.json"
    mine.write_text(json.dumps({"info": {"project_urls": {"Source": ours + "/"}}}))
    owned = release(
        repo, "check-name", "omniq-models", "--repository", ours, "--pypi-json", str(mine)
    )
    assert owned.returncode == 0, owned.stderr


def test_an_umbrella_release_moves_the_pins_in_the_docs(repo: Path) -> None:
    before = str(project(repo, "omniq")["version"])
    (repo / "docs").mkdir()
    (repo / "docs" / "install.md").write_text(
        f'pip install --find-links ./r "omniq=={before}"\npip install "omniq[all]=={before}"\n'
    )
    out = release(repo, "omniq", "patch", "--date", "2030-01-02")
    assert out.returncode == 0, out.stderr
    after = str(project(repo, "omniq")["version"])
    assert (repo / "docs" / "install.md").read_text() == (
        f'pip install --find-links ./r "omniq=={after}"\npip install "omniq[all]=={after}"\n'
    )
