"""The client side of the namespace tests, run inside a host's namespace:
``python netns_driver.py {enqueue|audit|latency|schedule} CONFIG_JSON``; prints one
JSON line (``schedule`` prints ``t0 <seconds>`` first)."""

from __future__ import annotations

import asyncio
import json
import math
import statistics
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import chaos_tasks as ct
import msgspec
import netns_tasks as nt
from chaos_fleet import audit, read_ledger, worker_pid

from omniq.core import OmniQ
from omniq.models import EventType, Task, TaskStatus, now
from omniq.storage import open_storage


async def enqueue(cfg: dict[str, Any]) -> dict[str, Any]:
    async with OmniQ(cfg["url"], cfg["url"], cfg["events"], lease_seconds=cfg["lease"]) as oq:
        tags = [f"t{i}" for i in range(cfg["n"])]
        tasks = [
            oq.build(ct.awork, (cfg["ledger"], t, cfg["seconds"]), max_retries=20) for t in tags
        ]
        t0 = time.monotonic()
        for i in range(0, len(tasks), 500):
            await oq.enqueue_many(tasks[i : i + 500])
        data = msgspec.json.encode({"tasks": tasks, "tags": tags})
        Path(cfg["ids_file"]).write_bytes(data)  # noqa: ASYNC240 - a one-shot client
    return {"enqueued": len(tasks), "seconds": time.monotonic() - t0}


async def drain_and_audit(cfg: dict[str, Any]) -> dict[str, Any]:
    saved = msgspec.json.decode(Path(cfg["ids_file"]).read_bytes())  # noqa: ASYNC240
    tasks = [msgspec.convert(t, Task) for t in saved["tasks"]]
    tags = saved["tags"]
    ids = [t.id for t in tasks]
    t0 = time.monotonic()
    async with open_storage(cfg["url"]) as backend:
        assert backend.tasks is not None
        while True:
            got = await backend.tasks.get(ids)
            done = sum(1 for t in got if t is not None and t.status is TaskStatus.SUCCESS)
            if done == len(ids) or time.monotonic() - t0 > cfg["timeout"]:
                break
            await asyncio.sleep(0.1)
    drained = time.monotonic() - t0
    a = await audit(cfg["url"], tasks, tags, Path(cfg["ledger"]), workers=cfg["workers"],
                    interrupted=cfg["interrupted"], events_url=cfg["events"])  # fmt: skip
    runs = read_ledger(Path(cfg["ledger"]))
    rerun_final: list[int | None] = []
    async with open_storage(cfg["url"]) as backend:
        assert backend.results is not None
        for t, tag in zip(tasks, tags, strict=True):
            if len(runs.get(tag, [])) > 1:
                res = await backend.results.get_one(t.id)
                rerun_final.append(worker_pid(res) if res is not None else None)
    first = [r[0].t for r in runs.values() if r]
    last = [r[-1].t for r in runs.values() if r]
    return {
        "tasks": a.tasks, "succeeded": a.succeeded, "lost": len(a.lost), "runs": a.runs,
        "reruns": a.reruns, "unexplained": len(a.unexplained),
        "duplicates": len(a.duplicate_completions), "statuses": a.statuses,
        "rerun_final_pids": rerun_final, "drained": drained,
        "run_span": (max(last) - min(first)) / 1e9 if first else 0.0,
    }  # fmt: skip


async def latency(cfg: dict[str, Any]) -> dict[str, Any]:
    async with OmniQ(cfg["url"], cfg["url"]) as oq:
        warm = await oq.enqueue(nt.stamp, (time.time(),))
        await oq.get_result(warm, wait=True, timeout=30)
        lat: list[float] = []
        for _ in range(cfg["n"]):
            t = await oq.enqueue(nt.stamp, (time.time(),))
            res = await oq.get_result(t, wait=True, timeout=30)
            assert res is not None
            lat.append(float(res.value))
            await asyncio.sleep(cfg["gap"])  # the W2 gap between tasks, not a synchronization
    lat.sort()
    return {
        "n": len(lat),
        "p50_ms": statistics.median(lat) * 1000,
        "p95_ms": lat[int(len(lat) * 0.95) - 1] * 1000,
    }


async def schedule(cfg: dict[str, Any]) -> dict[str, Any]:
    async with OmniQ(cfg["url"], event_storage=cfg["url"]) as oq:
        t0 = math.ceil(now()) + cfg["lead"]
        runs = cfg["runs"]
        sched = await oq.schedule(
            nt.tick, interval=1.0, start_at=t0, end_at=t0 + runs - 0.5, misfire_policy="run_once"
        )
        print(f"t0 {t0}", flush=True)
        # the schedule's window (and a margin) is the measurement: wait it out
        await asyncio.sleep(max(0.0, t0 + runs + cfg["settle"] - now()))
        tasks = [
            t for t in await oq.list_tasks(limit=10_000)
            if t.metadata.get("schedule_id") == sched.id
        ]  # fmt: skip
        per_run = Counter(round(t.metadata["scheduled_for"] - t0) for t in tasks)
        evs = await oq.get_events(limit=100_000)
        mine = {t.id for t in tasks}
        enq = Counter(e.task_id for e in evs if e.type is EventType.ENQUEUED and e.task_id in mine)
    return {
        "expected": list(range(runs)),
        "per_run": {str(k): v for k, v in sorted(per_run.items())},
        "enqueued_events_max": max(enq.values(), default=0),
    }


def main() -> None:
    cmd, cfg = sys.argv[1], json.loads(sys.argv[2])
    fn = {"enqueue": enqueue, "audit": drain_and_audit, "latency": latency,
          "schedule": schedule}[cmd]  # fmt: skip
    print(json.dumps(asyncio.run(fn(cfg))), flush=True)


if __name__ == "__main__":
    main()
