"""Damage a stored record with the engine's own client, as a disk fault, a bad
migration or a hand edit would: the store must cope with what it finds."""

from __future__ import annotations

import sqlite3
import struct
from typing import Any
from urllib.parse import parse_qs, urlsplit, urlunsplit

import msgspec

GARBAGE = b"\xc1\xc1 not msgpack \xff\x00"
"""Bytes no msgpack decoder accepts (0xc1 is never used by msgpack)."""


def _param(url: str, name: str) -> str:
    return parse_qs(urlsplit(url).query)[name][0]


def _bare(url: str) -> str:
    return urlunsplit(urlsplit(url)._replace(query=""))


def _append(path: str, data: bytes) -> None:
    with open(path, "ab") as f:
        f.write(data)


async def corrupt_task(
    backend_id: str, store: Any, url: str, task_id: str, queue: str = "hq"
) -> None:
    """Overwrite the stored record of ``task_id`` with bytes that do not decode (for the
    file backends: append a journal record for the id that is not a task)."""
    if backend_id == "sqlite":
        with sqlite3.connect(store.db.path) as c:
            n = c.execute("UPDATE tasks SET data = ? WHERE id = ?", (GARBAGE, task_id)).rowcount
        assert n == 1
    elif backend_id == "postgres":
        import asyncpg

        conn = await asyncpg.connect(_bare(url))
        try:
            schema = _param(url, "schema")
            res = await conn.execute(
                f'UPDATE "{schema}".tasks SET envelope = $1 WHERE id = $2', GARBAGE, task_id
            )
        finally:
            await conn.close()
        assert res == "UPDATE 1", res
    elif backend_id == "redis":
        import redis.asyncio as aioredis

        r = aioredis.from_url(_bare(url))
        try:
            key = f"{_param(url, 'prefix')}t:{task_id}"
            assert await r.exists(key)
            await r.hset(key, "d", GARBAGE)
        finally:
            await r.aclose()
    elif backend_id == "nats":
        import nats

        from omniq.storage._backends.nats._conn import token

        nc = await nats.connect(_bare(url))
        try:
            kv = await nc.jetstream().key_value(store.tasks_bucket)
            await kv.get(token(task_id))  # exists
            await kv.put(token(task_id), GARBAGE)
        finally:
            await nc.close()
    elif backend_id in ("file-local", "file-memfs"):
        # A journal frame (4-byte length + msgpack Change) whose record for the id is not
        # a task record: ``func`` must be a string.
        bad_rec = [{"id": task_id, "queue": queue, "func": 7}]
        body = msgspec.msgpack.encode([[bad_rec]])
        frame = struct.pack(">I", len(body)) + body
        if backend_id == "file-local":
            _append(f"{store.root}/journal", frame)
        else:
            store._fs.pipe_file(f"{store.root}/log/{10**18:020d}", frame)
    else:
        raise AssertionError(f"no way to corrupt {backend_id}")


async def append_garbage_frame(backend_id: str, store: Any) -> None:
    """Add a journal frame whose body is not msgpack at all (file backends)."""
    frame = struct.pack(">I", len(GARBAGE)) + GARBAGE
    if backend_id == "file-local":
        _append(f"{store.root}/journal", frame)
    else:
        store._fs.pipe_file(f"{store.root}/log/{10**18:020d}", frame)


async def corrupt_result(backend_id: str, store: Any, url: str, task_id: str) -> None:
    """Overwrite the stored result of ``task_id`` with bytes that do not decode."""
    if backend_id == "sqlite":
        with sqlite3.connect(store.db.path) as c:
            c.execute("UPDATE results SET data = ? WHERE task_id = ?", (GARBAGE, task_id))
    elif backend_id == "postgres":
        import asyncpg

        conn = await asyncpg.connect(_bare(url))
        try:
            schema = _param(url, "schema")
            await conn.execute(
                f'UPDATE "{schema}".results SET envelope = $1 WHERE task_id = $2', GARBAGE, task_id
            )
        finally:
            await conn.close()
    elif backend_id == "redis":
        import redis.asyncio as aioredis

        r = aioredis.from_url(_bare(url))
        try:
            await r.set(f"{_param(url, 'prefix')}res:{task_id}", GARBAGE)
        finally:
            await r.aclose()
    elif backend_id == "nats":
        import nats

        nc = await nats.connect(_bare(url))
        try:
            kv = await nc.jetstream().key_value(store.results_bucket)
            await kv.put(store.results._key(task_id), GARBAGE)
        finally:
            await nc.close()
    elif backend_id in ("file-local", "file-memfs"):
        store._fs.pipe_file(store.results._path(task_id), GARBAGE)
    else:
        raise AssertionError(f"no way to corrupt {backend_id}")
