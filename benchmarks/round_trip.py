"""Floors of a single enqueue: one call at a time with no queue library on top, for
scale against ``benchmarks.enqueue_cpu single`` and the harness's W6 (docs/performance.md,
"Single enqueue against its floors").

- Redis, asyncio: a bare ``asyncio.Protocol`` sending ``PING`` and awaiting each reply
  (one event-loop round trip: what any async client pays per call when it waits for
  the answer), on the default loop and, when installed, on uvloop.
- Redis, synchronous: redis-py's blocking ``LPUSH`` of a 200-byte value (what a
  synchronous client such as Huey sends per enqueue).
- PostgreSQL: a durable one-row ``INSERT`` of a pending task into OmniQ's own ``tasks``
  table (a scratch schema, its indexes as OmniQ creates them), alone and with the
  ``NOTIFY`` that wakes waiting workers, over asyncpg with prepared statements.

    uv run python -m benchmarks.round_trip
    REDIS=redis://127.0.0.1:6379/14 N=10000 ROUNDS=5 uv run python -m benchmarks.round_trip

The variants alternate within every round; the table shows the median rate over the
rounds, the range, and the wall time per call at the median.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from omniq.models import new_id

PING = b"*1\r\n$4\r\nPING\r\n"
INSERT = (
    "INSERT INTO tasks (id, queue, status, priority, eta, expires_at, key, waiting, "
    "envelope, attempt) VALUES ($1, 'bench', 'pending', 0, NULL, NULL, NULL, 0, $2, 0)"
)
INSERT_NOTIFY = (
    "WITH ins AS (" + INSERT + " RETURNING queue) "
    "SELECT count(pg_notify('omniq_bench_rt', ins.queue)) FROM ins"
)
ENVELOPE = b"x" * 200


class _Pong(asyncio.Protocol):
    def __init__(self) -> None:
        self.waiter: asyncio.Future[None] | None = None

    def data_received(self, data: bytes) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)


def _ping_loop(host: str, port: int, n: int, uvloop: bool) -> float:
    async def run() -> float:
        loop = asyncio.get_running_loop()
        transport, proto = await loop.create_connection(_Pong, host, port)
        try:
            t0 = time.perf_counter()
            for _ in range(n):
                proto.waiter = loop.create_future()
                transport.write(PING)
                await proto.waiter
            return n / (time.perf_counter() - t0)
        finally:
            transport.close()

    if uvloop:
        import uvloop as uv

        return uv.run(run())
    return asyncio.run(run())


def _lpush_loop(url: str, n: int) -> float:
    import redis

    client = redis.Redis.from_url(url)
    try:
        t0 = time.perf_counter()
        for _ in range(n):
            client.lpush("omniq:bench:rt", ENVELOPE)
        rate = n / (time.perf_counter() - t0)
        client.delete("omniq:bench:rt")
        return rate
    finally:
        client.close()


async def _pg_loops(url: str, n: int, rounds: int, out: dict[str, list[float]]) -> None:
    import asyncpg

    from omniq.core import OmniQ

    schema = f"bench_rt_{new_id().replace('-', '')[-12:]}"
    scratch = f"{url}{'&' if '?' in url else '?'}schema={schema}"
    async with OmniQ(scratch):  # creates the schema, its tables and indexes
        pass
    conn = await asyncpg.connect(url, server_settings={"search_path": schema})
    try:
        plain, notify = await conn.prepare(INSERT), await conn.prepare(INSERT_NOTIFY)

        async def insert() -> None:
            await plain.fetch(new_id(), ENVELOPE)

        async def insert_notify() -> None:
            await notify.fetch(new_id(), ENVELOPE)

        variants: list[tuple[str, Callable[[], Awaitable[None]]]] = [
            ("postgresql INSERT, durable", insert),
            ("postgresql INSERT + NOTIFY, durable", insert_notify),
        ]
        for r in range(rounds):
            for name, call in variants[r % 2 :] + variants[: r % 2]:
                t0 = time.perf_counter()
                for _ in range(n):
                    await call()
                out.setdefault(name, []).append(n / (time.perf_counter() - t0))
    finally:
        await conn.execute(f"DROP SCHEMA {schema} CASCADE")
        await conn.close()


def main() -> None:
    redis_url = os.environ.get("REDIS", "redis://127.0.0.1:6379/14")
    pg_url = os.environ.get("PG", "postgresql://postgres@127.0.0.1:5432/test")
    n = int(os.environ.get("N", "10000"))
    rounds = int(os.environ.get("ROUNDS", "5"))
    parts = urlsplit(redis_url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 6379
    try:
        import uvloop  # noqa: F401

        have_uvloop = True
    except ImportError:
        have_uvloop = False
    out: dict[str, list[float]] = {}
    redis_variants: list[tuple[str, Callable[[], float]]] = [
        ("redis PING, asyncio", lambda: _ping_loop(host, port, n, False)),
        ("redis LPUSH, redis-py sync", lambda: _lpush_loop(redis_url, n)),
    ]
    if have_uvloop:
        redis_variants.insert(1, ("redis PING, uvloop", lambda: _ping_loop(host, port, n, True)))
    for r in range(rounds):
        k = r % len(redis_variants)
        for name, run in redis_variants[k:] + redis_variants[:k]:
            out.setdefault(name, []).append(run())
    asyncio.run(_pg_loops(pg_url, max(n // 4, 500), rounds, out))
    print(f"{'floor':<38} {'median/s':>10} {'range/s':>17} {'µs/call':>8}")
    for name, rates in out.items():
        med = statistics.median(rates)
        spread = f"{min(rates):,.0f}-{max(rates):,.0f}"
        print(f"{name:<38} {med:>10,.0f} {spread:>17} {1e6 / med:>8.1f}")


if __name__ == "__main__":
    main()
