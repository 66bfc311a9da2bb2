"""The cost of a claim against a held-back backlog in the in-process state machine
(memory and file stores; the file store runs it under the lock every process takes).

For each backlog size, enqueues that many tasks of one rate-limited key (``"50/s"``),
claims once so the key's budget is spent, then times further claims (``limit=50``),
each of which finds the key full and must pass over its backlog:

    uv run python -m benchmarks.held_claim
    SIZES=1000,10000 uv run python -m benchmarks.held_claim
"""

from __future__ import annotations

import os
import time

from omniq.storage._state import QueueState
from omniq.storage.testing.helpers import task


def _per_claim(size: int, rounds: int = 20) -> tuple[float, int]:
    s = QueueState()
    t0 = time.time()
    s.enqueue([task(rate_limit="50/s", limit_key="k") for _ in range(size)], t0)
    first = s.claim(["default"], "w", 50, 30.0, t0)
    start = time.perf_counter()
    for _ in range(rounds):
        got = s.claim(["default"], "w", 50, 30.0, t0 + 0.01)
        assert got == [], "the key's budget should be spent"
    return (time.perf_counter() - start) / rounds * 1e3, len(first)


def main() -> None:
    sizes = [int(x) for x in os.environ.get("SIZES", "100,1000,2000,10000").split(",")]
    print(f"{'held tasks':>10}  {'first claim took':>16}  {'ms per claim of the full key':>28}")
    for size in sizes:
        ms, first = _per_claim(size)
        print(f"{size:>10,}  {first:>16}  {ms:>28.3f}")


if __name__ == "__main__":
    main()
