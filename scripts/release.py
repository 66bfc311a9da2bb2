"""Release one OmniQ distribution: set its version, date its CHANGELOG entry, keep the
umbrella's range on it true, and refuse a version a sibling's range does not accept.

    scripts/release DIST [VERSION | major | minor | patch] [--date YYYY-MM-DD]
    scripts/release check-tag DIST-vVERSION     (the release workflow; prints key=value)
    scripts/release check-name DIST --repository URL [--pypi-json FILE]

Each distribution is versioned on its own (semver; in 0.x a minor bump is a breaking
one). ``release`` writes the version into ``packages/<dist>/pyproject.toml`` and turns
the CHANGELOG's unreleased heading(s) at the top into ``## VERSION — DATE``. When the
umbrella ``omniq`` pins the distribution to a range the new version is outside of, the
umbrella's range moves to the new series and its CHANGELOG says so; any other sibling
whose range excludes the new version makes the release refuse (widen that sibling and
release it first). ``check-tag`` is what the release workflow runs on a tag: the
version must be the distribution's and its CHANGELOG entry dated. ``check-name``
refuses a distribution whose name the project does not own on the public index.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import sys
import tomllib
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import Requirement
from packaging.version import Version

UMBRELLA = "omniq"

PUBLISH: dict[str, str] = {
    "omniq-models": "pypi",
    "omniq-config": "pypi",
    "omniq-serialization": "pypi",
    "omniq-storage": "pypi",
    "omniq-events": "pypi",
    "omniq-workers": "pypi",
    "omniq-core": "pypi",
    "omniq-web": "pypi",
    "omniq-contrib": "pypi",
    "omniq-testing": "pypi",
    # On the public index "omniq" is an unrelated project: the umbrella is published as
    # files attached to its GitHub release (and to private indexes), never to PyPI.
    UMBRELLA: "github",
}
"""Where each distribution is published (docs/packaging.md, "Names")."""

PINNED_IN = ["README.md", "docs/**/*.md", "packages/*/README.md"]
"""Where install commands pin the umbrella (``omniq==X.Y.Z``; scripts/check_install_paths.py)."""

UNRELEASED = re.compile(r"^## +(?:(?P<version>\d[^\s]*) +[—-]+ +)?unreleased\s*$", re.I | re.M)
HEADING = re.compile(r"^## +.*$", re.M)


class ReleaseError(Exception):
    """A release that would leave the distributions inconsistent; the message says why."""


@dataclass
class Dist:
    """One distribution of the workspace, as its files say."""

    name: str
    folder: Path
    version: Version
    requires: list[Requirement]

    @property
    def pyproject(self) -> Path:
        return self.folder / "pyproject.toml"

    @property
    def changelog(self) -> Path:
        return self.folder / "CHANGELOG.md"


def load(root: Path) -> dict[str, Dist]:
    """Every distribution under ``root/packages``, by name."""
    found: dict[str, Dist] = {}
    for pyproject in sorted((root / "packages").glob("*/pyproject.toml")):
        project = tomllib.loads(pyproject.read_text())["project"]
        requires = [Requirement(r) for r in project.get("dependencies", [])]
        for extra in project.get("optional-dependencies", {}).values():
            requires += [Requirement(r) for r in extra]
        found[project["name"]] = Dist(
            project["name"], pyproject.parent, Version(project["version"]), requires
        )
    return found


def next_version(current: Version, how: str) -> Version:
    """``how`` is an explicit version or major/minor/patch (0.x: minor is the breaking one)."""
    major, minor, patch = (*current.release, 0, 0, 0)[:3]
    if how == "major":
        return Version(f"{major + 1}.0.0")
    if how == "minor":
        return Version(f"{major}.{minor + 1}.0")
    if how == "patch":
        return Version(f"{major}.{minor}.{patch + 1}")
    return Version(how)


def series(version: Version) -> str:
    """The range of versions compatible with ``version`` under semver (0.x per minor)."""
    major, minor = (*version.release, 0, 0)[:2]
    upper = f"0.{minor + 1}" if major == 0 else f"{major + 1}"
    return f">={version},<{upper}"


def released_versions(changelog: str) -> list[Version]:
    """The versions the CHANGELOG shows with a date (released)."""
    out = []
    for match in re.finditer(r"^## +(\d[^\s]*) +[—-]+ +\d{4}-\d\d-\d\d\s*$", changelog, re.M):
        out.append(Version(match.group(1)))
    return out


def date_changelog(text: str, version: Version, date: str) -> str:
    """Merge the unreleased sections at the top into one, headed ``## version — date``."""
    headings = list(HEADING.finditer(text))
    if not headings or not UNRELEASED.match(headings[0].group(0)):
        raise ReleaseError("the CHANGELOG has no unreleased entry at the top: nothing to release")
    bodies: list[str] = []
    end = len(text)
    for i, heading in enumerate(headings):
        if not UNRELEASED.match(heading.group(0)):
            end = heading.start()
            break
        stop = headings[i + 1].start() if i + 1 < len(headings) else len(text)
        body = text[heading.end() : stop].strip("\n")
        if body:
            bodies.append(body)
    merged = f"## {version} — {date}\n" + "\n".join(bodies) + "\n"
    tail = text[end:]
    return text[: headings[0].start()] + merged + ("\n" + tail if tail else "")


def add_unreleased_line(text: str, line: str) -> str:
    """Add a bullet to the top unreleased section, creating ``## Unreleased`` if needed."""
    headings = list(HEADING.finditer(text))
    if headings and UNRELEASED.match(headings[0].group(0)):
        at = headings[0].end() + 1
        return text[:at] + f"- {line}\n" + text[at:]
    at = headings[0].start() if headings else len(text)
    return text[:at] + f"## Unreleased\n- {line}\n\n" + text[at:]


def set_version(pyproject: str, version: Version) -> str:
    new, count = re.subn(
        r'^version = "[^"]*"$', f'version = "{version}"', pyproject, count=1, flags=re.M
    )
    if count != 1:
        raise ReleaseError("no version line in pyproject.toml")
    return new


def set_range(pyproject: str, name: str, spec: str) -> str:
    """Give every requirement on ``name`` in ``pyproject`` the specifier ``spec``."""
    pattern = re.compile(rf'"{re.escape(name)}(\[[^\]]*\])?[^";]*(;[^"]*)?"')
    return pattern.sub(lambda m: f'"{name}{m.group(1) or ""}{spec}{m.group(2) or ""}"', pyproject)


def release(root: Path, name: str, how: str | None, date: str) -> list[str]:
    """Apply the release of ``name``; returns what was changed, one line each."""
    dists = load(root)
    if name not in dists:
        raise ReleaseError(f"no distribution {name!r} (known: {', '.join(sorted(dists))})")
    dist = dists[name]
    version = next_version(dist.version, how) if how else dist.version
    log = dist.changelog.read_text()
    done = released_versions(log)
    if done and version <= max(done):
        raise ReleaseError(f"{name} {version} is not newer than the released {max(done)}")
    if version < dist.version:
        raise ReleaseError(f"{name} {version} is older than the checkout's {dist.version}")
    broken = [
        f"{other.name} requires {req}"
        for other in dists.values()
        if other.name not in (name, UMBRELLA)
        for req in other.requires
        if req.name == name and not req.specifier.contains(version, prereleases=True)
    ]
    if broken:
        raise ReleaseError(
            f"{name} {version} is outside a sibling's range: "
            + "; ".join(sorted(set(broken)))
            + ". Widen those ranges (and release those distributions) first."
        )
    changes = []
    dist.changelog.write_text(date_changelog(log, version, date))
    if version != dist.version:
        dist.pyproject.write_text(set_version(dist.pyproject.read_text(), version))
        changes.append(f"{name}: version {dist.version} -> {version}")
    changes.append(f"{name}: CHANGELOG entry ## {version} — {date}")
    if name == UMBRELLA and version != dist.version:
        pin = re.compile(rf"(?<![\w./-])omniq((?:\[[^\]]*\])?)=={re.escape(str(dist.version))}\b")
        for pattern in PINNED_IN:
            for path in sorted(root.glob(pattern)):
                text = path.read_text()
                new = pin.sub(rf"omniq\1=={version}", text)
                if new != text:
                    path.write_text(new)
                    changes.append(f"{path.relative_to(root)}: omniq=={version}")
    umbrella = dists.get(UMBRELLA)
    if umbrella is not None and name != UMBRELLA:
        outside = [r for r in umbrella.requires if r.name == name]
        if any(not r.specifier.contains(version, prereleases=True) for r in outside):
            spec = series(version)
            umbrella.pyproject.write_text(set_range(umbrella.pyproject.read_text(), name, spec))
            umbrella.changelog.write_text(
                add_unreleased_line(umbrella.changelog.read_text(), f"Requires {name}{spec}.")
            )
            changes.append(f"{UMBRELLA}: requires {name}{spec} (release {UMBRELLA} next)")
    return changes


def check_tag(root: Path, tag: str) -> dict[str, str]:
    """What the release workflow builds for ``tag``; raises when tag and files disagree."""
    match = re.fullmatch(r"(?P<name>omniq(?:-[a-z]+)?)-v(?P<version>\d[^\s]*)", tag)
    if match is None:
        raise ReleaseError(f"tag {tag!r} is not <distribution>-v<version>")
    dists = load(root)
    name, version = match["name"], Version(match["version"])
    if name not in dists:
        raise ReleaseError(f"tag {tag!r} names no distribution of this repository")
    dist = dists[name]
    if dist.version != version:
        raise ReleaseError(f"tag says {name} {version}, pyproject.toml says {dist.version}")
    if version not in released_versions(dist.changelog.read_text()):
        raise ReleaseError(f"{dist.changelog.relative_to(root)} has no dated entry ## {version}")
    if name not in PUBLISH:
        raise ReleaseError(f"{name} has no publishing decision in scripts/release.py PUBLISH")
    return {
        "distribution": name,
        "version": str(version),
        "folder": str(dist.folder.relative_to(root)),
        "index": PUBLISH[name],
    }


def check_name(name: str, pypi: dict[str, object] | None, repository: str) -> str:
    """Refuse to publish ``name`` to PyPI unless it is free or one of the PyPI project's
    URLs is ``repository`` (this repository's URL)."""
    if PUBLISH.get(name) != "pypi":
        raise ReleaseError(f"{name} is not published to PyPI (PUBLISH says {PUBLISH.get(name)})")
    if pypi is None:
        return f"{name}: free on PyPI; this release claims it"
    info = pypi.get("info")
    urls = info.get("project_urls") if isinstance(info, dict) else None
    values = [str(v).lower() for v in (urls or {}).values()] if isinstance(urls, dict) else []
    ours = repository.lower().rstrip("/")
    if not ours or not any(v.rstrip("/") == ours or v.startswith(ours + "/") for v in values):
        raise ReleaseError(f"{name} on PyPI belongs to another project ({values}): refusing")
    return f"{name}: on PyPI, project URLs point here"


def _fetch_pypi(name: str) -> dict[str, object] | None:
    try:
        with urllib.request.urlopen(f"https://pypi.org/pypi/{name}/json", timeout=30) as r:
            data: dict[str, object] = json.load(r)
            return data
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return None
        raise


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    root = Path(__file__).resolve().parent.parent
    if args[:1] == ["--root"]:
        root, args = Path(args[1]), args[2:]
    try:
        if args[:1] == ["check-tag"]:
            for key, value in check_tag(root, args[1]).items():
                print(f"{key}={value}")
            return 0
        if args[:1] == ["check-name"]:
            parser = argparse.ArgumentParser(prog="scripts/release check-name")
            parser.add_argument("name")
            parser.add_argument("--repository", required=True, help="this repository's URL")
            parser.add_argument("--pypi-json", help="the PyPI JSON of the name ('' = free)")
            ns = parser.parse_args(args[1:])
            if ns.pypi_json is None:
                pypi = _fetch_pypi(ns.name)
            else:
                text = Path(ns.pypi_json).read_text() if ns.pypi_json else ""
                pypi = json.loads(text) if text else None
            print(check_name(ns.name, pypi, ns.repository))
            return 0
        parser = argparse.ArgumentParser(prog="scripts/release", description=__doc__)
        parser.add_argument("distribution")
        parser.add_argument("version", nargs="?", help="X.Y.Z, major, minor or patch")
        parser.add_argument("--date", default=dt.date.today().isoformat())
        ns = parser.parse_args(args)
        for line in release(root, ns.distribution, ns.version, ns.date):
            print(line)
        return 0
    except ReleaseError as exc:
        print(f"release: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
