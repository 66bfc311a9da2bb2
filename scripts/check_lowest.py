"""Constrained environments: each distribution at the lowest versions its metadata allows.

For every distribution, a fresh venv of the lowest Python >= 3.11 here gets its built
wheel and, as direct requirements resolved to their *lowest* allowed versions
(``uv pip install --resolution lowest-direct``), everything its pyproject requires, its
extras included: third-party packages from the index, OmniQ siblings from this
checkout's wheels and from wheels of their older versions built from git history (the
last commit of each version, cached). Then that distribution's own tests
(``packages/<dist>/tests``) run there, against the installed wheels only. A failure
means a lower bound in the metadata is false: raise it.

    uv run python scripts/check_lowest.py [--only omniq-core] [--jobs 2]

Prints, per distribution, the sibling versions it ran with; "older" marks one older
than this checkout's (the older-sibling scenarios).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "omniq-history-wheels"
TESTS_AT_ONCE = threading.Semaphore(1)
"""Venvs are prepared in parallel, tests run one distribution at a time: some tests
measure wake-up latencies, which two suites on two cores would distort."""
TEST_TOOLS = ["pytest", "hypothesis"]
TEST_NEEDS = {
    # tests that run the stores on every engine need the drivers of omniq-storage[all]
    "omniq-events": ["omniq-storage[all]"],
    "omniq-core": ["omniq-storage[all]"],
    # Starlette's TestClient runs on httpx
    "omniq-web": ["httpx>=0.27,<0.28"],
    "omniq-contrib": ["omniq-storage[all]", "httpx>=0.27"],  # Starlette's TestClient
}
PYTEST_INI = """[pytest]
addopts = -ra --strict-markers --import-mode=importlib -p no:cacheprovider
markers =
    slow: long-running tests (multi-process, stress)
"""


def run(cmd: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, check=False, capture_output=True, text=True, **kw)  # type: ignore[call-overload,no-any-return]


def git(*args: str) -> str:
    out = run(["git", "-C", str(ROOT), *args])
    if out.returncode != 0:
        raise RuntimeError(out.stderr.strip())
    return out.stdout


def project(text: str) -> dict[str, object]:
    data: dict[str, object] = tomllib.loads(text)["project"]
    return data


def requirements(proj: dict[str, object]) -> list[str]:
    """The base dependencies and every extra's, as written."""
    deps = proj.get("dependencies", [])
    extras = proj.get("optional-dependencies", {})
    reqs = [str(r) for r in deps] if isinstance(deps, list) else []
    for extra in extras.values() if isinstance(extras, dict) else []:
        reqs += [str(r) for r in extra]
    return reqs


def history_versions(folder: str) -> dict[Version, str]:
    """version -> the last commit holding it, for every older version of a distribution."""
    commits = git("log", "--first-parent", "--format=%H", "--", f"{folder}/pyproject.toml").split()
    found: dict[Version, str] = {}
    newer: tuple[str, Version] | None = None  # the next commit (towards HEAD) and its version
    for commit in commits:  # newest first
        try:
            version = Version(
                str(project(git("show", f"{commit}:{folder}/pyproject.toml"))["version"])
            )
        except (RuntimeError, KeyError, tomllib.TOMLDecodeError):
            break
        if newer is not None and version != newer[1] and version not in found:
            found[version] = git("rev-parse", f"{newer[0]}^").strip()  # just before the bump
        newer = (commit, version)
    return found


def build_history(folder: str, current: Version, out: Path) -> list[str]:
    """Wheels of the distribution's older versions into ``out``; returns what was built."""
    built = []
    for version, commit in sorted(history_versions(folder).items()):
        if version >= current:
            continue
        cached = CACHE / commit / Path(folder).name
        if not any(cached.glob("*.whl")):
            with tempfile.TemporaryDirectory() as tmp:
                tar = subprocess.run(
                    ["git", "-C", str(ROOT), "archive", "--format=tar", commit, folder],
                    check=True,
                    capture_output=True,
                ).stdout
                subprocess.run(["tar", "-x", "-C", tmp], input=tar, check=True)
                res = run(
                    ["uv", "build", "--wheel", "--no-sources", "-q", "-o", str(cached)],
                    cwd=Path(tmp) / folder,
                )
                if res.returncode != 0:
                    built.append(f"{Path(folder).name} {version}: does not build ({commit[:10]})")
                    continue
        for wheel in cached.glob("*.whl"):
            shutil.copy(wheel, out)
        built.append(f"{Path(folder).name} {version} ({commit[:10]})")
    return built


def lowest_python() -> str:
    out = run(["bash", str(ROOT / "scripts" / "pythons")])
    first = out.stdout.split("\n", 1)[0].split()
    if not first:
        raise SystemExit("check_lowest: no Python >= 3.11 found")
    return first[1]


def check(
    name: str,
    proj: dict[str, object],
    folder: Path,
    wheels: Path,
    older: Path,
    current: dict[str, Version],
    python: str,
    work: Path,
) -> tuple[bool, str]:
    start = time.monotonic()
    here = work / name
    venv = here / "venv"
    log: list[str] = []
    (wheel,) = wheels.glob(f"{str(canonicalize_name(name)).replace('-', '_')}-*.whl")
    reqs = requirements(proj)
    res = run(["uv", "venv", "-q", "--python", python, str(venv)])
    py = str(venv / "bin" / "python")
    res = run(
        ["uv", "pip", "install", "-q", "--python", py, "--resolution", "lowest-direct",
         "--find-links", str(wheels), "--find-links", str(older),
         f"{name} @ {wheel.as_uri()}", *reqs, *TEST_NEEDS.get(name, [])]
    )  # fmt: skip
    if res.returncode == 0:
        res = run(["uv", "pip", "install", "-q", "--python", py, *TEST_TOOLS])
    if res.returncode != 0:
        return False, f"{name}: the lowest versions do not install\n{res.stdout}{res.stderr}"
    freeze = run(["uv", "pip", "freeze", "--python", py]).stdout
    installed = {
        str(canonicalize_name(line.split("==")[0])): line.split("==")[1]
        for line in freeze.splitlines()
        if "==" in line
    }
    direct = sorted({str(canonicalize_name(Requirement(r).name)) for r in reqs})
    shown = []
    for dep in direct:
        if dep not in installed:
            continue  # a requirement whose marker excludes this platform
        mark = ""
        if dep in current and Version(installed[dep]) < current[dep]:
            mark = f" (older; checkout {current[dep]})"
        shown.append(f"{dep} {installed[dep]}{mark}")
    log.append(f"{name}: " + ", ".join(shown))
    tests = here / "run"  # the tests keep their place (and so their module names)
    shutil.copytree(folder / "tests", tests / folder.relative_to(ROOT) / "tests")
    shutil.copy(ROOT / "conftest.py", tests / "conftest.py")
    (tests / "pytest.ini").write_text(PYTEST_INI)
    with TESTS_AT_ONCE:
        res = run([py, "-m", "pytest", "-q", str(folder.relative_to(ROOT) / "tests")], cwd=tests)
    (here / "pytest.log").write_text(res.stdout + res.stderr)
    last = res.stdout.strip().splitlines()[-1:] or ["(no output)"]
    took = time.monotonic() - start
    if res.returncode != 0:
        return False, "\n".join([*log, f"  tests FAILED in {took:.0f} s:", res.stdout[-6000:]])
    return True, "\n".join([*log, f"  {last[0]} ({took:.0f} s with the install)"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", action="append", help="a distribution (repeatable)")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--keep", help="work in this folder and leave it (venvs, full logs)")
    ns = parser.parse_args()
    python = lowest_python()
    version = run([python, "-c", "import platform; print(platform.python_version())"]).stdout
    print(f"  lowest versions on Python {version.strip()} (the lowest Python >= 3.11 here)")
    dists: dict[str, tuple[dict[str, object], Path]] = {}
    for pyproject in sorted((ROOT / "packages").glob("*/pyproject.toml")):
        proj = project(pyproject.read_text())
        dists[str(proj["name"])] = (proj, pyproject.parent)
    current = {name: Version(str(p["version"])) for name, (p, _) in dists.items()}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(ns.keep or tmp)
        if ns.keep:
            shutil.rmtree(work, ignore_errors=True)
            work.mkdir(parents=True)
        wheels, older = work / "wheels", work / "older"
        older.mkdir()
        subprocess.run(
            ["uv", "build", "--all-packages", "--no-sources", "--wheel", "-q", "-o", str(wheels)],
            check=True,
            cwd=ROOT,
        )
        if git("rev-parse", "--is-shallow-repository").strip() == "true":
            print("  shallow clone: no older sibling versions (fetch the history for them)")
        else:
            built = []
            for name, (_, folder) in dists.items():
                if name != "omniq":  # nothing depends on the umbrella
                    built += build_history(str(folder.relative_to(ROOT)), current[name], older)
            print("  older versions from git history: " + "; ".join(built))
        names = [n for n in dists if not ns.only or n in ns.only]
        with ThreadPoolExecutor(max_workers=ns.jobs) as pool:
            results = list(
                pool.map(
                    lambda n: check(
                        n, dists[n][0], dists[n][1], wheels, older, current, python, work
                    ),
                    names,
                )
            )
    for _, text in results:
        print("  " + text.replace("\n", "\n  "))
    failed = [n for n, (ok, _) in zip(names, results, strict=True) if not ok]
    if failed:
        print(f"  lowest versions FAILED for: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
