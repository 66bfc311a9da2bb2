"""Server time of each dashboard page with many tasks in the store (aim: p95 <= 150 ms
with 100,000 tasks, SQLite and PostgreSQL).

Seeds ``--tasks`` tasks over five queues (a tenth succeeded, a hundredth failed for
good, the rest pending), a few schedules, then requests every page ``--rounds`` times
through the ASGI app in process (httpx's ASGITransport: server time, no socket) and
prints p50/p95/max per page and engine. PostgreSQL runs in a fresh schema that is
dropped at the end.

    uv run python benchmarks/web.py [--tasks 100000] [--rounds 40] [--engines sqlite,postgres]
        [--poll 0.5 --share 1]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from omniq.core import OmniQ
from omniq.models import Task, TaskStatus
from omniq.storage import Completion
from omniq.storage.testing.servers import unique_url
from omniq.web import create_app

QUEUES = [f"q{i}" for i in range(5)]
FUNCS = ["app.mail:send", "app.reports:build", "app.sync:pull", "app.img:resize"]


async def seed(oq: OmniQ, n: int) -> tuple[str, str, str]:
    """n tasks; returns (an id in the middle, a failed id, the oldest id)."""
    await oq.open()
    tasks = oq.queue.tasks
    ids: list[str] = []
    batch = 2000
    for start in range(0, n, batch):
        chunk = [
            Task(func=FUNCS[i % len(FUNCS)], queue=QUEUES[i % len(QUEUES)])
            for i in range(start, min(n, start + batch))
        ]
        await tasks.enqueue(chunk)
        ids += [t.id for t in chunk]
    failed = ""
    to_finish = n // 10 + n // 100
    done = 0
    while done < to_finish:
        claimed = await tasks.claim(QUEUES, "bench-worker", limit=min(1000, to_finish - done))
        if not claimed:
            break
        comps = []
        for j, c in enumerate(claimed):
            bad = (done + j) < n // 100
            comps.append(
                Completion(c.task.id, c.token, TaskStatus.ERROR if bad else TaskStatus.SUCCESS)
            )
            if bad:
                failed = c.task.id
        await tasks.complete(comps)
        done += len(claimed)
    for i in range(5):
        await oq.schedule("app.reports:build", interval=3600 + i, name=f"hourly-{i}")
    return ids[len(ids) // 2], failed, ids[0]


async def measure(
    url: str, n: int, rounds: int, share: float | None, poll: float
) -> dict[str, list[float]]:
    async with OmniQ(url) as oq:
        t0 = time.perf_counter()
        middle, failed, oldest = await seed(oq, n)
        print(f"  seeded {n} tasks in {time.perf_counter() - t0:.1f}s")
        app = create_app(oq=oq, poll=poll)
        if share is not None:  # renew the shared counts more often than the app would
            app.state.counts.share = share
        pages = {
            "overview /": "/",
            "overview fragment": "/fragments/queues",
            "tasks (newest)": "/tasks",
            "tasks deep page": f"/tasks?before={middle}",
            "tasks queue+status": "/tasks?queue=q3&status=pending",
            "tasks status=error": "/tasks?status=error",
            "tasks function filter": "/tasks?func=img",
            "tasks time window": "/tasks?since=2000-01-01T00:00&until=2999-01-01T00:00",
            "task detail": f"/tasks/{failed}",
            "task detail (pending)": f"/tasks/{oldest}",
            "dead letters": "/dead-letters",
            "schedules": "/schedules",
            "workers": "/workers",
            "metrics": "/metrics",
        }
        out: dict[str, list[float]] = {k: [] for k in pages}
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            for path in pages.values():  # warm-up
                assert (await client.get(path)).status_code == 200, path
            for _ in range(rounds):
                for name, path in pages.items():
                    t = time.perf_counter()
                    r = await client.get(path)
                    out[name].append((time.perf_counter() - t) * 1000)
                    assert r.status_code == 200
        await app.state.counts.close()  # a mounted app's lifespan (which would) never runs
        counts, last = app.state.counts, app.state.counts.last
        if last is not None:
            print(
                f"  counts: {counts.reads} reads in all (the last took"
                f" {last.cost * 1000:.0f} ms); shared: {last.cost > counts.budget}"
            )
    return out


def p(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(q * (len(s) - 1)))]


async def drop_schema(url: str) -> None:
    import asyncpg

    schema = url.split("schema=")[1]
    conn = await asyncpg.connect("postgresql://postgres@127.0.0.1:5432/test")
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--tasks", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=40)
    ap.add_argument("--engines", default="sqlite,postgres")
    ap.add_argument("--poll", type=float, default=2.0, help="the app's poll (default 2)")
    ap.add_argument(
        "--share",
        type=float,
        default=None,
        help="renew the shared counts every max(poll, SHARE x their cost) seconds "
        "(the app's default is 10; 1 puts background reads inside a short run)",
    )
    ns = ap.parse_args()
    for engine in ns.engines.split(","):
        with tempfile.TemporaryDirectory() as tmp:
            if engine == "sqlite":
                url = f"sqlite:///{Path(tmp) / 'web.db'}"
            else:
                url = unique_url("postgresql")
            print(f"{engine}: {ns.tasks} tasks, {ns.rounds} rounds")
            try:
                res = asyncio.run(measure(url, ns.tasks, ns.rounds, ns.share, ns.poll))
            finally:
                if engine != "sqlite":
                    asyncio.run(drop_schema(url))
            print(f"  {'page':<24}{'p50 ms':>9}{'p95 ms':>9}{'max ms':>9}")
            for name, vals in res.items():
                print(
                    f"  {name:<24}{statistics.median(vals):>9.1f}{p(vals, 0.95):>9.1f}"
                    f"{max(vals):>9.1f}"
                )


if __name__ == "__main__":
    main()
