"""procrastinate adapter: PostgreSQL database ``bench_procrastinate`` (schema applied
fresh by ``reset``), ``procrastinate worker --concurrency BENCH_IO_CONCURRENCY`` with
LISTEN/NOTIFY; bulk enqueue uses ``batch_defer_async``."""

from __future__ import annotations

import asyncio
import time
from importlib.metadata import version as dist_version

from _common import IO_CONCURRENCY, REC, SLEEP, execv, pg_dsn, venv_bin
from procrastinate import App, PsycopgConnector

app = App(connector=PsycopgConnector(conninfo=pg_dsn("procrastinate")))
CHUNK = 1000


@app.task(name="noop", queue="bench")
async def noop() -> None:
    REC.done("noop")


@app.task(name="lat", queue="bench")
async def lat(ts: float, seq: int) -> None:
    REC.latency(ts, seq)


@app.task(name="sleep", queue="bench")
async def sleep() -> None:
    t0 = time.time()
    await asyncio.sleep(SLEEP)
    REC.done("sleep", t0)


TASKS = {"noop": noop, "lat": lat, "sleep": sleep}


def version() -> str:
    return dist_version("procrastinate")


async def reset() -> None:
    import psycopg

    async with await psycopg.AsyncConnection.connect(pg_dsn("procrastinate")) as conn:
        await conn.execute("DROP SCHEMA IF EXISTS public CASCADE")
        await conn.execute("CREATE SCHEMA public")
        await conn.commit()
    async with app.open_async():
        await app.schema_manager.apply_schema_async()


class Client:
    async def open(self) -> None:
        await app.open_async()

    async def close(self) -> None:
        await app.close_async()

    async def send(self, kind: str, *args: object) -> None:
        if kind == "lat":
            await lat.defer_async(ts=args[0], seq=args[1])
        else:
            await TASKS[kind].defer_async()

    async def send_many(self, kind: str, n: int) -> None:
        task = TASKS[kind]
        for start in range(0, n, CHUNK):
            await task.batch_defer_async(*({} for _ in range(min(CHUNK, n - start))))


def worker(kind: str) -> None:
    execv(
        [
            venv_bin("procrastinate"),
            "--app=bench_procrastinate.app",
            "worker",
            "--queues=bench",
            f"--concurrency={IO_CONCURRENCY}",
        ]
    )
