"""DependencyResolver: reject dependency cycles at enqueue time.

The storage engine keeps dependency *state* (who waits on whom, release and cascade
cancel), so it works across processes and restarts; this class only guards the graph's
shape before anything is stored.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence

from omniq.models import DependencyCycleError, Task

__all__ = ["DependencyResolver"]

Fetch = Callable[[Sequence[str]], Awaitable[list[Task | None]]]
"""Reads stored tasks by id (``TaskQueueStorage.get``)."""


class DependencyResolver:
    """Checks that a batch of new tasks does not close a cycle.

    The graph is the batch's ``depends_on`` edges plus those of the stored tasks they
    reach (fetched level by level, one storage round trip per level, only when the batch
    has dependencies at all). A self-dependency is a cycle of length one.
    """

    def __init__(self, fetch: Fetch | None = None, *, max_depth: int = 64) -> None:
        self._fetch = fetch
        self.max_depth = max_depth

    async def check(self, tasks: Sequence[Task]) -> None:
        """Raise DependencyCycleError naming the cycle if ``tasks`` would create one."""
        if not any(t.depends_on for t in tasks):
            return
        graph: dict[str, tuple[str, ...]] = {t.id: t.depends_on for t in tasks}
        if self._fetch is not None:
            frontier = self._unknown(graph, graph.values())
            depth = 0
            while frontier and depth < self.max_depth:
                depth += 1
                found = await self._fetch(sorted(frontier))
                for tid, task in zip(sorted(frontier), found, strict=True):
                    graph[tid] = task.depends_on if task is not None else ()
                frontier = self._unknown(graph, (graph[t] for t in frontier))
        self.check_graph(graph)

    @staticmethod
    def _unknown(graph: dict[str, tuple[str, ...]], edges: Iterable[tuple[str, ...]]) -> set[str]:
        return {d for deps in edges for d in deps if d not in graph}

    @staticmethod
    def check_graph(graph: dict[str, tuple[str, ...]]) -> None:
        """Raise DependencyCycleError if the id -> depends_on graph has a cycle."""
        white, grey, black = 0, 1, 2
        color: dict[str, int] = {}
        for root in graph:
            if color.get(root, white) != white:
                continue
            stack: list[tuple[str, int]] = [(root, 0)]
            path: list[str] = [root]
            color[root] = grey
            while stack:
                node, i = stack[-1]
                deps = graph.get(node, ())
                if i < len(deps):
                    stack[-1] = (node, i + 1)
                    dep = deps[i]
                    c = color.get(dep, white)
                    if c == grey:
                        cycle = [*path[path.index(dep) :], dep]
                        raise DependencyCycleError("dependency cycle: " + " -> ".join(cycle))
                    if c == white:
                        color[dep] = grey
                        stack.append((dep, 0))
                        path.append(dep)
                else:
                    color[node] = black
                    stack.pop()
                    path.pop()

    @staticmethod
    def order(tasks: Sequence[Task]) -> list[Task]:
        """``tasks`` sorted so each comes after the batch members it depends on."""
        by_id = {t.id: t for t in tasks}
        out: list[Task] = []
        seen: set[str] = set()
        for root in tasks:
            if root.id in seen:
                continue
            seen.add(root.id)
            stack: list[tuple[Task, int]] = [(root, 0)]
            while stack:
                task, i = stack[-1]
                if i < len(task.depends_on):
                    stack[-1] = (task, i + 1)
                    dep = by_id.get(task.depends_on[i])
                    if dep is not None and dep.id not in seen:
                        seen.add(dep.id)
                        stack.append((dep, 0))
                else:
                    out.append(task)
                    stack.pop()
        return out
