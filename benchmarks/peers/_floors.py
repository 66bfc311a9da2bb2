"""Engine floors, for scale: what Redis and PostgreSQL do with no queue library.

- ``redis-benchmark`` LPUSH/RPOP, one client (what one worker's connection can do)
  and 50 clients, no pipelining, in its own DB 14.
- A bare ``FOR UPDATE SKIP LOCKED`` claim-and-delete loop over asyncpg, one
  connection, batches of 1 and 100, in database ``bench_floor``.
"""

from __future__ import annotations

import asyncio
import csv
import io
import subprocess
import time

PG_FLOOR = "postgresql://postgres@127.0.0.1:5432/bench_floor"


def redis_floor(n: int) -> dict[str, float]:
    out: dict[str, float] = {}
    for clients in (1, 50):
        proc = subprocess.run(
            [
                *("redis-benchmark", "-h", "127.0.0.1", "-p", "6379", "--dbnum", "14"),
                *("-t", "lpush,rpop", "-n", str(n), "-c", str(clients), "--csv"),
            ],
            capture_output=True,
            text=True,
            timeout=300,
            check=True,
        )
        for row in csv.reader(io.StringIO(proc.stdout)):
            if row and row[0] in ("LPUSH", "RPOP"):
                out[f"redis {row[0]} ({clients} client{'s' if clients > 1 else ''})"] = float(
                    row[1]
                )
    subprocess.run(
        ["redis-cli", "-h", "127.0.0.1", "-n", "14", "flushdb"], capture_output=True, check=False
    )
    return out


async def _pg_floor(n: int) -> dict[str, float]:
    import asyncpg

    conn = await asyncpg.connect(PG_FLOOR)
    out: dict[str, float] = {}
    try:
        for batch in (1, 100):
            await conn.execute(
                "DROP TABLE IF EXISTS floor_jobs;"
                "CREATE TABLE floor_jobs (id bigserial PRIMARY KEY, payload jsonb NOT NULL)"
            )
            t0 = time.perf_counter()
            await conn.execute(
                "INSERT INTO floor_jobs (payload) SELECT '{}'::jsonb FROM generate_series(1, $1)",
                n,
            )
            out["pg INSERT (one statement)"] = n / (time.perf_counter() - t0)
            claim = (
                "DELETE FROM floor_jobs WHERE id IN (SELECT id FROM floor_jobs ORDER BY id"
                " FOR UPDATE SKIP LOCKED LIMIT $1) RETURNING id, payload"
            )
            done = 0
            t0 = time.perf_counter()
            while done < n:
                rows = await conn.fetch(claim, batch)
                if not rows:
                    break
                done += len(rows)
            out[f"pg SKIP LOCKED claim+delete (batch {batch})"] = done / (time.perf_counter() - t0)
        await conn.execute("DROP TABLE IF EXISTS floor_jobs")
    finally:
        await conn.close()
    return out


def pg_floor(n: int) -> dict[str, float]:
    return asyncio.run(_pg_floor(n))
