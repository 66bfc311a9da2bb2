"""Hostile bytes written straight into the engines, and task paths outside the allow-list.

- A pickle (whose unpickling would write a marker file) stored in place of a task
  envelope or a result, directly in the SQLite row / Redis hash / PostgreSQL row, is
  refused with StorageError when read back; the marker never appears.
- A task whose stored argument payload is that pickle, tagged ``dill`` (unsigned), is
  failed with a SerializationError by a worker; nothing is unpickled.
- With an allow-list, a task naming a module outside it fails with InvalidTaskError and
  the module is never imported (``sys.modules``, and its import-time marker).
"""

from __future__ import annotations

import os
import sqlite3
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import msgspec
import pytest
from pickles import evil_pickle

from omniq.core import OmniQ
from omniq.models import Payload, TaskResult, TaskStatus
from omniq.storage import Backend, open_storage
from omniq.storage.testing import builtin_specs

BACKENDS = {spec.id: spec for spec in builtin_specs()}
"""The conformance suite's specs of the omniq-storage backends, by id."""

pytestmark = pytest.mark.anyio

ENGINES = ["sqlite", "redis", "postgres"]


@pytest.fixture
async def engine(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[str, Backend]]:
    spec = BACKENDS[request.param]
    url = spec.url(tmp_path)
    try:
        async with open_storage(url) as backend:
            yield url, backend
    finally:
        if spec.cleanup is not None:
            spec.cleanup(url)


async def _overwrite(url: str, table: str, task_id: str, blob: bytes) -> None:
    """Replace the stored bytes of a task (``table='tasks'``) or result behind the
    backend's back."""
    if url.startswith("sqlite"):
        path = url.removeprefix("sqlite:///")
        col = "data"
        with sqlite3.connect("/" + path.lstrip("/")) as c:
            names = [r[1] for r in c.execute(f"PRAGMA table_info({table})")]
            col = next(n for n in ("data", "envelope", "payload", "value") if n in names)
            n = c.execute(f"UPDATE {table} SET {col} = ? WHERE {names[0]} = ?", (blob, task_id))
            assert n.rowcount == 1
        return
    q = parse_qs(urlsplit(url).query)
    if url.startswith("redis"):
        import redis.asyncio as aioredis

        prefix = q["prefix"][0]
        r = aioredis.from_url(url.split("?", maxsplit=1)[0])
        try:
            if table == "tasks":
                assert await r.hexists(f"{prefix}t:{task_id}", "d")
                await r.hset(f"{prefix}t:{task_id}", "d", blob)
            else:
                key = f"{prefix}res:{task_id}"
                kind = await r.type(key)
                if kind == b"hash":
                    fields = await r.hkeys(key)
                    await r.hset(key, fields[0], blob)
                else:
                    await r.set(key, blob)
        finally:
            await r.aclose()
        return
    import asyncpg

    schema = q["schema"][0]
    conn = await asyncpg.connect(url.split("?", maxsplit=1)[0])
    try:
        cols = [
            r["column_name"]
            for r in await conn.fetch(
                "SELECT column_name, data_type FROM information_schema.columns"
                " WHERE table_schema = $1 AND table_name = $2 AND data_type = 'bytea'",
                schema,
                table,
            )
        ]
        key = "id" if table == "tasks" else "task_id"
        n = await conn.execute(
            f'UPDATE "{schema}".{table} SET {cols[0]} = $1 WHERE {key} = $2', blob, task_id
        )
        assert n.endswith(" 1"), n
    finally:
        await conn.close()


@pytest.mark.parametrize("engine", ENGINES, indirect=True)
async def test_raw_pickle_in_the_engine_is_rejected(
    engine: tuple[str, Backend], tmp_path: Path
) -> None:
    url, backend = engine
    assert backend.tasks is not None and backend.results is not None
    marker = tmp_path / "pwned"
    bomb = evil_pickle(str(marker))
    async with OmniQ(backend) as oq:
        task = await oq.enqueue("os:getcwd")
    await backend.results.put([TaskResult(task_id=task.id, status=TaskStatus.SUCCESS)])
    await _overwrite(url, "tasks", task.id, bomb)
    await _overwrite(url, "results", task.id, bomb)
    # Reads refuse the record without failing: a live task that does not decode is
    # skipped (None) and a result that does not decode reads as missing.
    assert await backend.tasks.get([task.id]) == [None]
    assert await backend.results.get([task.id]) == [None]
    assert not marker.exists()


@pytest.mark.parametrize("backend_id", ["sqlite", "redis", "postgres", "nats"])
async def test_unsigned_pickle_argument_payload_is_never_unpickled(
    backend_id: str, tmp_path: Path
) -> None:
    spec = BACKENDS[backend_id]
    url = spec.url(tmp_path)
    marker = tmp_path / "pwned"
    try:
        async with OmniQ(url, dill_enabled=True, dill_secret="k" * 32) as oq:
            base = oq.build("os:getcwd", max_retries=0)
            forged = msgspec.structs.replace(
                base, payload=Payload("dill", evil_pickle(str(marker)))
            )
            await oq.enqueue_many([forged])
            async with oq.worker(allowed_modules=["os"]):  # reach the payload check
                r = await oq.get_result(forged.id, wait=True, timeout=30)
    finally:
        if spec.cleanup is not None:
            spec.cleanup(url)
    assert r is not None and r.status is TaskStatus.ERROR and r.error is not None
    assert r.error.type.endswith("SerializationError"), r.error
    assert not marker.exists()


async def test_unknown_module_outside_allow_list_is_never_imported(tmp_path: Path) -> None:
    marker = tmp_path / "imported"
    os.environ["OMNIQ_FUZZ_MARKER"] = str(marker)
    sys.modules.pop("fuzz_evil", None)
    try:
        async with OmniQ(f"sqlite:///{tmp_path / 'q.db'}") as oq:
            base = oq.build("os:getcwd", max_retries=0)
            evil = msgspec.structs.replace(base, func="fuzz_evil:run")
            nowhere = msgspec.structs.replace(
                oq.build("os:getcwd", max_retries=0), func="no_such_module_xyz.sub:run"
            )
            await oq.enqueue_many([evil, nowhere])
            async with oq.worker(allowed_modules=["os", "app.tasks"]):
                rs = [await oq.get_result(t.id, wait=True, timeout=30) for t in (evil, nowhere)]
    finally:
        os.environ.pop("OMNIQ_FUZZ_MARKER", None)
    for r in rs:
        assert r is not None and r.status is TaskStatus.ERROR and r.error is not None
        assert r.error.type.endswith("InvalidTaskError"), r.error
        assert "allowed" in r.error.message
    assert "fuzz_evil" not in sys.modules
    assert "no_such_module_xyz" not in sys.modules
    assert not marker.exists()
