"""Micro-benchmark of the task hot path: dumps_call / loads_call of small arguments.

Run: ``uv run python packages/omniq-serialization/benchmarks/serialization.py``
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from typing import Any

from omniq.serialization import SerializationManager


def rate(fn: Callable[[], Any], seconds: float = 0.5) -> float:
    """Calls per second of ``fn`` over roughly ``seconds``."""
    n, batch = 0, 1000
    start = time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        for _ in range(batch):
            fn()
        n += batch
    return n / elapsed


def report(label: str, fn: Callable[[], Any]) -> None:
    print(f"{label:<28}{rate(fn):>14,.0f}")


def main() -> None:
    msgpack = SerializationManager()
    dill = SerializationManager(dill_enabled=True, secret="bench-secret")
    cases: dict[str, tuple[tuple[Any, ...], dict[str, Any]]] = {
        "empty": ((), {}),
        "small": ((42, "user-17"), {"retry": True, "ratio": 0.5}),
        "nested": (
            ([1, 2, 3], {"id": "a", "tags": ["x", "y"]}),
            {"when": dt.datetime(2026, 11, 27, tzinfo=dt.UTC), "blob": b"\x00" * 64},
        ),
    }
    print(f"{'operation':<28}{'ops/s':>14}")
    for name, (args, kwargs) in cases.items():
        payload = msgpack.dumps_call(args, kwargs)
        report(f"dumps_call {name}", lambda a=args, k=kwargs: msgpack.dumps_call(a, k))
        report(f"loads_call {name}", lambda p=payload: msgpack.loads_call(p))
    args, kwargs = ({1, 2, 3},), {"n": 1}
    payload = dill.dumps_call(args, kwargs)
    report("dumps_call dill (a set)", lambda: dill.dumps_call(args, kwargs))
    report("loads_call dill (a set)", lambda: dill.loads_call(payload))
    report("resolve_callable (cached)", lambda: msgpack.resolve_callable("json:dumps"))


if __name__ == "__main__":
    main()
