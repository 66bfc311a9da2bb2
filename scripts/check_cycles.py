"""Fail when modules of the OmniQ distributions import each other in a cycle.

Every portion under ``packages/*/src/omniq/`` goes into one import graph built by grimp
(installed with import-linter). grimp reads every import statement of a module's
source, so imports under ``if TYPE_CHECKING:`` and imports inside functions are edges
too: a cycle hidden that way is still a cycle (``--self-test`` shows it on a scratch
package). Each strongly connected group of modules is reported with one cycle through
it; the exit status is 1 when any is found.

    python scripts/check_cycles.py                     # the whole repository
    python scripts/check_cycles.py --only 'omniq.storage*'   # cycles touching storage
"""

from __future__ import annotations

import argparse
import fnmatch
import sys
import tempfile
import textwrap
from collections.abc import Iterable, Mapping
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parent.parent


def portions(root: Path = ROOT) -> list[str]:
    """Import names of the portions under ``packages/*/src/omniq/`` (``omniq.models``,
    ``omniq.storage``, ...); the umbrella's own ``omniq/__init__.py`` is not one."""
    names = {
        f"omniq.{init.parent.name}" for init in root.glob("packages/*/src/omniq/*/__init__.py")
    }
    return sorted(names)


def import_graph(packages: Iterable[str]) -> dict[str, set[str]]:
    """module -> modules it imports (any statement, anywhere in the module)."""
    graph = grimp.build_graph(*packages, include_external_packages=False, cache_dir=None)
    return {m: set(graph.find_modules_directly_imported_by(m)) for m in graph.modules}


def strongly_connected(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """Groups of modules that reach each other (Tarjan), each sorted; singletons only
    when a module imports itself."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    groups: list[list[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work: list[tuple[str, list[str]]] = [(start, sorted(graph.get(start, ())))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, todo = work[-1]
            if todo:
                nxt = todo.pop(0)
                if nxt not in index:
                    index[nxt] = low[nxt] = counter
                    counter += 1
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, sorted(graph.get(nxt, ()))))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                group: list[str] = []
                while True:
                    m = stack.pop()
                    on_stack.discard(m)
                    group.append(m)
                    if m == node:
                        break
                if len(group) > 1 or node in graph.get(node, ()):
                    groups.append(sorted(group))
    return sorted(groups)


def one_cycle(graph: Mapping[str, set[str]], group: list[str]) -> list[str]:
    """A shortest cycle through the group's first module, staying inside the group."""
    members = set(group)
    start = group[0]
    parent: dict[str, str] = {}
    frontier = [start]
    seen = {start}
    while frontier:
        nxt: list[str] = []
        for node in frontier:
            for dep in sorted(graph.get(node, ())):
                if dep == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(parent[path[-1]])
                    return [*reversed(path), start]
                if dep in members and dep not in seen:
                    seen.add(dep)
                    parent[dep] = node
                    nxt.append(dep)
        frontier = nxt
    return [start, start]


def find_cycles(
    packages: Iterable[str], only: str | None = None
) -> list[tuple[list[str], list[str]]]:
    """(one cycle as a module path, the whole group) for each group of modules that
    import each other, keeping groups with a module matching ``only``."""
    graph = import_graph(packages)
    out = []
    for group in strongly_connected(graph):
        if only is None or any(fnmatch.fnmatchcase(m, only) for m in group):
            out.append((one_cycle(graph, group), group))
    return out


def self_test() -> None:
    """grimp sees imports under TYPE_CHECKING and inside functions: build a scratch
    package whose only cycle is made of those two kinds, and find it."""
    with tempfile.TemporaryDirectory() as tmp:
        pkg = Path(tmp, "cyclecheck_probe")
        pkg.mkdir()
        (pkg / "__init__.py").write_text("")
        (pkg / "a.py").write_text(
            textwrap.dedent(
                """
                from typing import TYPE_CHECKING
                if TYPE_CHECKING:
                    from cyclecheck_probe.b import B
                """
            )
        )
        (pkg / "b.py").write_text(
            textwrap.dedent(
                """
                class B:
                    def f(self):
                        from cyclecheck_probe import a
                        return a
                """
            )
        )
        sys.path.insert(0, tmp)
        try:
            cycles = [cycle for cycle, _ in find_cycles(["cyclecheck_probe"])]
        finally:
            sys.path.remove(tmp)
    want = ["cyclecheck_probe.a", "cyclecheck_probe.b", "cyclecheck_probe.a"]
    if cycles != [want]:
        raise SystemExit(f"self-test: expected the cycle {want}, grimp gave {cycles}")
    print("self-test: TYPE_CHECKING and function-level imports are edges")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--only",
        metavar="PATTERN",
        help="report only cycles through a module matching this glob (e.g. 'omniq.storage*')",
    )
    parser.add_argument(
        "--self-test", action="store_true", help="first show that grimp sees hidden imports"
    )
    args = parser.parse_args(argv)
    if args.self_test:
        self_test()
    packages = portions()
    cycles = find_cycles(packages, args.only)
    scope = f" (only {args.only})" if args.only else ""
    if not cycles:
        print(f"no import cycles in {len(packages)} portions{scope}")
        return 0
    print(f"{len(cycles)} group(s) of modules importing each other{scope}:")
    for cycle, group in cycles:
        print("  " + " -> ".join(cycle))
        if len(group) > len(cycle) - 1:
            print(f"    (the group has {len(group)} modules: {', '.join(group)})")
    return 1


if __name__ == "__main__":
    sys.exit(main())
