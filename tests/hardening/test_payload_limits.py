"""Payload limits on every engine: learnt at connect, checked before anything of a
batch is stored, and named in a typed error (``PayloadTooLargeError``)."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from urllib.parse import urlsplit

import pytest

from omniq.models import Payload, PayloadTooLargeError, Task, TaskResult, TaskStatus, now
from omniq.storage import Backend
from omniq.storage.testing.servers import NATS_URL, REDIS_URL

pytestmark = pytest.mark.anyio
ALL = ["memory", "file-local", "sqlite", "postgres", "redis", "nats"]
KIB = 1024
MIB = 1024 * KIB


def task(n: int, **kw: object) -> Task:
    """A task whose arguments are ``n`` bytes."""
    return Task(func="hardening_tasks:one", payload=Payload("msgpack", b"x" * n), **kw)  # type: ignore[arg-type]


def result(task_id: str, n: int) -> TaskResult:
    return TaskResult(
        task_id=task_id,
        status=TaskStatus.SUCCESS,
        payload=Payload("msgpack", b"y" * n),
        finished_at=now(),
        expires_at=now() + 600,
    )


async def nats_info_max_payload() -> int:
    """``max_payload`` as the NATS server announces it in its INFO line."""
    parts = urlsplit(NATS_URL)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port or 4222)
    try:
        line = await asyncio.wait_for(reader.readline(), 5)
    finally:
        writer.close()
    assert line.startswith(b"INFO ")
    return int(json.loads(line[5:])["max_payload"])


def redis_bulk_len() -> int:
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        return int(client.config_get("proto-max-bulk-len")["proto-max-bulk-len"])
    finally:
        client.close()


@pytest.mark.parametrize("backend_id", ALL)
async def test_connect_learns_the_engine_limit(store: Backend, backend_id: str) -> None:
    lim = store.payload_limit
    assert store.tasks is not None and store.tasks.payload_limit is lim
    assert store.results is not None and store.results.payload_limit is lim
    expected = {
        "memory": None,
        "file-local": None,
        "sqlite": sqlite3.connect(":memory:").getlimit(sqlite3.SQLITE_LIMIT_LENGTH),
        "postgres": (1 << 30) - 1,
        "redis": redis_bulk_len() if backend_id == "redis" else None,
        "nats": await nats_info_max_payload() if backend_id == "nats" else None,
    }[backend_id]
    assert lim.engine == expected
    engine = lim.setting if expected is None else expected - lim.reserve
    assert lim.effective == min(lim.setting, engine)
    lim.setting = 1000
    assert lim.effective == 1000


@pytest.mark.parametrize("backend_id", ALL)
async def test_a_batch_with_one_oversized_task_is_refused_whole(
    store: Backend, backend_id: str
) -> None:
    assert store.tasks is not None
    store.payload_limit.setting = 64 * KIB
    small, big, after = task(10), task(100 * KIB), task(10)
    with pytest.raises(PayloadTooLargeError) as caught:
        await store.tasks.enqueue([small, big, after])
    err = caught.value
    assert err.subject == f"task {big.id}"
    assert err.limit == 64 * KIB and err.size > 100 * KIB
    assert f"task {big.id}: " in str(err)
    assert "102,400 bytes of arguments" in str(err)
    assert "OMNIQ_MAX_PAYLOAD_BYTES=64 KiB" in str(err)
    # Nothing of the batch was stored: not the task before the big one either.
    assert await store.tasks.get([small.id, big.id, after.id]) == [None, None, None]
    assert await store.tasks.count() == 0
    # The same batch without the big task goes in.
    stored = await store.tasks.enqueue([small, after])
    assert [t.id for t in stored] == [small.id, after.id]


@pytest.mark.parametrize("backend_id", ALL)
async def test_a_batch_with_one_oversized_result_is_refused_whole(
    store: Backend, backend_id: str
) -> None:
    assert store.results is not None
    store.payload_limit.setting = 64 * KIB
    ok, big = result("r-ok", 10), result("r-big", 100 * KIB)
    with pytest.raises(PayloadTooLargeError, match="result of task r-big: "):
        await store.results.put([ok, big])
    assert await store.results.get(["r-ok", "r-big"]) == [None, None]
    await store.results.put([ok])
    got = await store.results.get_one("r-ok")
    assert got is not None and got.payload == ok.payload


@pytest.mark.parametrize("backend_id", ["nats"])
async def test_nats_refuses_1_mib_arguments_naming_max_payload(
    store: Backend, backend_id: str
) -> None:
    """The server's ``max_payload`` (1 MiB by default) binds below the 16 MiB setting;
    the error says so instead of the driver's bare ``MaxPayloadError()``."""
    assert store.tasks is not None
    max_payload = await nats_info_max_payload()
    big = task(max_payload)
    with pytest.raises(PayloadTooLargeError) as caught:
        await store.tasks.enqueue([big])
    msg = str(caught.value)
    assert f"NATS max_payload {max_payload:,}" in msg
    assert "server limit; OMNIQ_MAX_PAYLOAD_BYTES=16 MiB" in msg
    assert f"{max_payload:,} bytes of arguments" in msg
    assert await store.tasks.get_one(big.id) is None


@pytest.mark.parametrize("backend_id", ["nats"])
async def test_nats_task_just_under_the_limit_is_stored_and_claimed(
    store: Backend, backend_id: str
) -> None:
    """The reserve kept for the record and work message is enough: a task at the
    effective limit is stored, announced and claimed with its arguments intact."""
    assert store.tasks is not None
    lim = store.payload_limit
    probe = task(0)
    overhead = lim.task_size(task(200 * KIB)) - 200 * KIB
    near = task(lim.effective - overhead, id=probe.id)
    assert lim.task_size(near) == lim.effective
    await store.tasks.enqueue([near])
    got = await store.tasks.claim(["default"], "w", limit=1)
    assert [c.task.id for c in got] == [near.id]
    assert got[0].task.payload == near.payload
