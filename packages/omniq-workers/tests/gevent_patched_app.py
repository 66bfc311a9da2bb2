"""Run by test_workers: a gevent-patched worker process, as ``omniq worker
--worker-type gevent`` starts one. Patching comes before every other import."""

from gevent import monkey

monkey.patch_all()

import asyncio  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))

from omniq_workers_testkit import MemorySink, MemorySource, make_task  # noqa: E402

from omniq.workers import AsyncWorkerPool  # noqa: E402


async def main() -> dict[str, object]:
    tasks = [make_task("sleep_for", 0.2, worker="gevent") for _ in range(20)]
    tasks.append(make_task("boom", "x", worker="gevent"))
    tasks.append(make_task("sleep_for", 30, worker="gevent", timeout=0.2))
    tasks.append(make_task("add", 1, 2, worker="gevent"))
    src, sink = MemorySource(tasks), MemorySink()
    pool = AsyncWorkerPool(src, sink, max_workers=50, gevent_workers=30, default_timeout=0)
    t0 = time.monotonic()
    await pool.run(burst=True)
    elapsed = time.monotonic() - t0
    worker = pool.worker("gevent")
    statuses: dict[str, int] = {}
    for o in sink.outcomes:
        statuses[o.status.value] = statuses.get(o.status.value, 0) + 1
    boom = next(o for o in sink.outcomes if o.error and "Boom" in o.error.type)
    return {
        "native": getattr(worker, "native", None),
        "statuses": statuses,
        "timed_out": sum(o.timed_out for o in sink.outcomes),
        "boom_type": boom.error.type if boom.error else None,
        "elapsed": elapsed,
        "threads_left": [t.name for t in threading.enumerate() if t.name.startswith("omniq")],
        "greenlets_left": getattr(worker, "greenlets", -1),
    }


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main())))
