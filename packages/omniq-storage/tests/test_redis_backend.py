"""Redis-specific behaviour: key prefixes, result TTL by key expiry, pub/sub wake-ups."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import anyio
import pytest
import redis.asyncio as aioredis

from omniq.models import BackendUnavailableError, StorageError, Task, TaskResult, TaskStatus, now
from omniq.storage._backends.redis._backend import RedisBackend

pytestmark = pytest.mark.anyio
BASE = "redis://127.0.0.1:6379/0"


@pytest.fixture
async def backend() -> AsyncIterator[RedisBackend]:
    be = RedisBackend(f"{BASE}?prefix=omniq-rtest-{uuid.uuid4().hex[:10]}:")
    async with be:
        yield be
        await be.drop()


async def test_prefix_isolates_and_drop_cleans(backend: RedisBackend) -> None:
    assert backend.tasks is not None
    await backend.tasks.enqueue([Task(func="m:f")])
    async with RedisBackend(BASE, prefix=f"omniq-rtest-{uuid.uuid4().hex[:10]}:") as other:
        assert other.tasks is not None and await other.tasks.count() == 0
    assert await backend.tasks.count() == 1
    assert await backend.drop() > 0
    assert [k async for k in backend.redis.scan_iter(match=f"{backend.prefix}*")] == []


async def test_result_ttl_is_key_expiry(backend: RedisBackend) -> None:
    assert backend.results is not None
    res = TaskResult(task_id="r1", status=TaskStatus.SUCCESS, expires_at=now() + 30)
    await backend.results.put([res])
    ttl = await backend.redis.pttl(f"{backend.prefix}res:r1")
    assert 25_000 < ttl <= 30_000


async def test_pubsub_wakes_worker_of_other_client(backend: RedisBackend) -> None:
    async with RedisBackend(BASE, prefix=backend.prefix) as producer:
        assert backend.tasks is not None and producer.tasks is not None
        woke: list[float] = []

        async def wait() -> None:
            assert backend.tasks is not None
            if await backend.tasks.wait_for_work(["default"], 10):
                woke.append(now())

        async with anyio.create_task_group() as tg:
            tg.start_soon(wait)
            await anyio.sleep(0.2)  # the waiter is blocked on pub/sub, not polling
            sent = now()
            await producer.tasks.enqueue([Task(func="m:f")])
        assert woke and woke[0] - sent < 1.0


async def test_scripts_are_cached_on_the_server(backend: RedisBackend) -> None:
    # Scripts are loaded on first use (EVALSHA, then SCRIPT LOAD on NOSCRIPT): the one a
    # claim ran is cached on the server afterwards, under the sha the client computed.
    assert backend.tasks is not None
    await backend.tasks.claim(["default"], "w")
    claim = backend.scripts["claim"]
    assert claim.sha
    assert await backend.redis.script_exists(claim.sha) == [True]


async def test_list_merges_per_queue_indexes_in_id_order(backend: RedisBackend) -> None:
    """Indexes are per queue (running tasks: the queue's lease zset); listing across
    queues merges them by id and applies offset/limit after the merge."""
    q = backend.tasks
    assert q is not None
    tasks = [Task(func="m:f", queue="ab"[i % 2]) for i in range(6)]
    await q.enqueue(tasks)
    ids = [t.id for t in tasks]
    assert [t.id for t in await q.list(limit=3, offset=2)] == ids[2:5]
    assert await q.count(status=TaskStatus.PENDING) == 6
    await q.claim(["a"], "w", limit=3)
    await q.claim(["b"], "w", limit=1)
    running = [ids[0], ids[1], ids[2], ids[4]]
    assert [t.id for t in await q.list(status=TaskStatus.RUNNING)] == running
    page = await q.list(status=TaskStatus.RUNNING, offset=1, limit=2)
    assert [t.id for t in page] == running[1:3]
    assert await q.count(status=TaskStatus.RUNNING) == 4
    assert await q.count(queue="b", status=TaskStatus.RUNNING) == 1
    assert [t.id for t in await q.list(status=TaskStatus.PENDING)] == [ids[3], ids[5]]


async def test_scripts_reload_after_a_script_flush(backend: RedisBackend) -> None:
    # A restarted server (or SCRIPT FLUSH) forgets the scripts: calls load them again.
    assert backend.tasks is not None
    await backend.tasks.enqueue([Task(func="m:f")])
    await backend.redis.script_flush()
    await backend.tasks.enqueue([Task(func="m:f")])
    assert await backend.tasks.count() == 2


async def test_work_notification_only_when_the_ready_set_was_empty(
    backend: RedisBackend,
) -> None:
    # A waiter waits only after seeing a queue's ready set empty, so only the enqueue
    # that fills an empty set announces work ("w:<queue>"); enqueues into a backlog
    # publish nothing (one fewer message to every subscriber per enqueue).
    assert backend.tasks is not None
    chan = f"{backend.prefix}chan"
    sub = backend.redis.pubsub()
    await sub.subscribe(chan)
    try:
        await sub.get_message(timeout=5)  # the subscription's confirmation

        async def until_marker() -> list[bytes]:
            await backend.redis.publish(chan, b"marker")  # after every earlier message
            seen: list[bytes] = []
            with anyio.fail_after(5):
                while True:
                    msg = await sub.get_message(ignore_subscribe_messages=True, timeout=1)
                    if msg is None:
                        continue
                    if msg["data"] == b"marker":
                        return seen
                    seen.append(msg["data"])

        await backend.tasks.enqueue([Task(func="m:f")])
        assert await until_marker() == [b"w:default"]
        await backend.tasks.enqueue([Task(func="m:f")])
        await backend.tasks.enqueue([Task(func="m:f"), Task(func="m:f", queue="other")])
        assert await until_marker() == [b"w:other"]
        assert len(await backend.tasks.claim(["default"], "w", limit=10)) == 3
        await backend.tasks.enqueue([Task(func="m:f")])  # empty again: announced
        assert await until_marker() == [b"w:default"]
    finally:
        await sub.aclose()


async def test_pipelined_lane_calls_share_one_connection(backend: RedisBackend) -> None:
    # Concurrent script calls are pipelined on the lane: each gets its own reply, and
    # none needs a connection of the pool.
    assert backend.tasks is not None
    await backend.tasks.enqueue([Task(func="m:f")])
    pool = backend.redis.connection_pool

    def opened() -> int:
        return len(pool._available_connections) + len(pool._in_use_connections)  # type: ignore[attr-defined]

    before = opened()
    tasks = [Task(func="m:f", queue=f"q{i}") for i in range(20)]
    got: dict[str, str] = {}

    async def one(t: Task) -> None:
        assert backend.tasks is not None
        [s] = await backend.tasks.enqueue([t])
        got[t.id] = s.queue

    async with anyio.create_task_group() as tg:
        for t in tasks:
            tg.start_soon(one, t)
    assert got == {t.id: t.queue for t in tasks}
    assert opened() == before


async def test_concurrent_script_calls_all_complete(backend: RedisBackend) -> None:
    assert backend.tasks is not None
    tasks = [Task(func="m:f") for _ in range(50)]
    stored: list[list[Task]] = []

    async def one(t: Task) -> None:
        stored.append(await backend.tasks.enqueue([t]))  # type: ignore[union-attr]

    async with anyio.create_task_group() as tg:
        for t in tasks:
            tg.start_soon(one, t)
    assert sorted(s[0].id for s in stored) == sorted(t.id for t in tasks)
    assert await backend.tasks.count() == 50


async def test_a_cancelled_script_call_leaves_no_reply_behind(backend: RedisBackend) -> None:
    """Cancelled between send and reply (the server paused meanwhile), a call must not
    leave its reply for the next call on the same connection to read."""
    assert backend.tasks is not None and backend.lane is not None
    await backend.tasks.enqueue([Task(func="m:f")])  # the lane is connected
    await backend.redis.execute_command("CLIENT", "PAUSE", 300, "ALL")
    with anyio.move_on_after(0.1):
        await backend.tasks.enqueue([Task(func="m:f", queue="cancelled")])
    t = Task(func="m:g", queue="after")
    [got] = await backend.tasks.enqueue([t])  # waits out the pause
    assert got.id == t.id and got.queue == "after"
    [c] = await backend.tasks.claim(["after"], "w")
    assert c.task.id == t.id


async def test_lapsed_and_foreign_idle_registrations_are_dropped(backend: RedisBackend) -> None:
    # An idle registration whose time ran out (a worker that died waiting), or one in a
    # format this version did not write, never gets a task: the task stays claimable
    # and the registration is gone once met.
    assert backend.tasks is not None
    key = f"{backend.prefix}iw:default"
    lapsed = "\x1f".join(["w-dead", "30.0", f"{backend.prefix}chan:gone", "default"])
    await backend.redis.zadd(key, {lapsed: now() - 1, "w-0.1.0-format": now() + 60})
    for _ in range(2):  # one registration met per enqueue into an empty queue
        t = Task(func="m:f")
        [stored] = await backend.tasks.enqueue([t])
        assert stored.status is TaskStatus.PENDING
        [c] = await backend.tasks.claim(["default"], "w")
        assert c.task.id == t.id
    assert await backend.redis.zcard(key) == 0


def test_pack_command_encodes_like_redis_py() -> None:
    import redis.asyncio.connection as rc

    from omniq.storage._backends.redis._resp import pack_command

    args = ("EVALSHA", b"\x00\xffbin", 0, 17, 1795837321.7916415, "ünï")
    assert pack_command(*args) == b"".join(rc.Connection().pack_command(*args))
    with pytest.raises(StorageError, match="cannot send list"):
        pack_command("GET", [1])  # type: ignore[arg-type]


async def test_a_hung_call_fails_instead_of_hanging() -> None:
    # The server stops answering scripts (writes paused): a call gives up after the
    # socket timeout and its retries with BackendUnavailableError instead of waiting
    # forever (the lane's watchdog hands the call over to the pool's timeouts).
    be = RedisBackend(f"{BASE}?prefix=omniq-rtest-{uuid.uuid4().hex[:10]}:", socket_timeout=0.1)
    admin = aioredis.from_url(BASE)
    async with be:
        assert be.tasks is not None
        try:
            await be.tasks.enqueue([Task(func="m:f")])  # every connection is open
            await admin.execute_command("CLIENT", "PAUSE", 15_000, "WRITE")
            with anyio.fail_after(20), pytest.raises(BackendUnavailableError):
                await be.tasks.enqueue([Task(func="m:f")])
        finally:
            await admin.execute_command("CLIENT", "UNPAUSE")
            await admin.aclose()
            await be.drop()
