"""The lean single-task enqueue script (``enqueue_one``) leaves Redis exactly as the
batch script (``enqueue``) does for the same task: same keys, fields, scores and reply."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import msgspec
import pytest

from omniq.models import ManualClock, Task, set_clock
from omniq.storage._backends.redis._backend import RedisBackend
from omniq.storage._backends.redis._resp import pack_command, pack_evalsha
from omniq.storage._remote import encode

pytestmark = pytest.mark.anyio
BASE = "redis://127.0.0.1:6379/0"


@pytest.fixture
async def pair() -> AsyncIterator[tuple[RedisBackend, RedisBackend]]:
    clock = ManualClock(1_800_000_000.0)  # both scripts see the same NOW
    old = set_clock(clock)
    run = uuid.uuid4().hex[:10]
    lean = RedisBackend(f"{BASE}?prefix=omniq-e1-{run}-a:")
    batch = RedisBackend(f"{BASE}?prefix=omniq-e1-{run}-b:")
    try:
        async with lean, batch:
            yield lean, batch
            await lean.drop()
            await batch.drop()
    finally:
        set_clock(old)


async def _dump(be: RedisBackend) -> dict[str, Any]:
    """Every key under the backend's prefix (prefix removed, also from values) with its
    content."""
    r: Any = be.redis
    p = be.prefix

    def strip(v: Any) -> Any:
        return v.replace(p.encode(), b"<P>") if isinstance(v, bytes) else v

    out: dict[str, Any] = {}
    async for raw in r.scan_iter(match=f"{p}*"):
        key = raw.decode()[len(p) :]
        kind = (await r.type(raw)).decode()
        if kind == "hash":
            out[key] = {k: strip(v) for k, v in (await r.hgetall(raw)).items()}
        elif kind == "zset":
            out[key] = [(strip(m), s) for m, s in await r.zrange(raw, 0, -1, withscores=True)]
        elif kind == "set":
            out[key] = sorted(strip(m) for m in await r.smembers(raw))
        else:
            out[key] = (kind, await r.dump(raw))
    return out


def _idle(be: RedisBackend, queue: str) -> tuple[str, dict[str, float]]:
    member = "\x1f".join(["w1", "30.0", f"{be.prefix}chan:w1", queue])
    return f"{be.prefix}iw:{queue}", {member: 1_800_000_060.0}


async def _both(lean: RedisBackend, batch: RedisBackend, task: Task) -> tuple[Task, Task]:
    assert lean.tasks is not None and batch.tasks is not None
    [a] = await lean.tasks.enqueue([task])  # a plain single task: enqueue_one
    [b] = await batch.tasks._enqueue([task], [encode(task)], "cancel")  # type: ignore[attr-defined]
    return a, b


CASES: dict[str, Callable[[float], Task]] = {
    "ready, expiring, priority": lambda t: Task(
        func="m:f", queue="q1", priority=3, expires_at=t + 60
    ),
    "delayed": lambda t: Task(func="m:f", queue="q2", eta=t + 100),
    "due eta": lambda t: Task(func="m:f", queue="q3", eta=t - 5, priority=-2),
}


@pytest.mark.parametrize("case", sorted(CASES))
async def test_same_state_as_the_batch_script(
    pair: tuple[RedisBackend, RedisBackend], case: str
) -> None:
    lean, batch = pair
    first = CASES[case](1_800_000_000.0)
    second = CASES[case](1_800_000_000.0)  # the queue no longer empty
    for t in (first, second, first):  # the last: an id already stored
        a, b = await _both(lean, batch, t)
        assert msgspec.structs.asdict(a) == msgspec.structs.asdict(b)
    assert await _dump(lean) == await _dump(batch)


@pytest.mark.parametrize("paused", [False, True])
async def test_handover_same_as_the_batch_script(
    pair: tuple[RedisBackend, RedisBackend], paused: bool
) -> None:
    lean, batch = pair
    for be in pair:
        key, reg = _idle(be, "hq")
        await be.redis.zadd(key, reg)
        if paused:
            await be.redis.sadd(f"{be.prefix}paused", "hq")
    a, b = await _both(lean, batch, Task(func="m:f", queue="hq", expires_at=1_800_000_100.0))
    assert msgspec.structs.asdict(a) == msgspec.structs.asdict(b)
    state = await _dump(lean)
    assert state == await _dump(batch)
    [task_key] = [k for k in state if k.startswith("t:")]
    assert state[task_key][b"s"] == (b"pending" if paused else b"running")


def test_pack_evalsha_is_pack_command() -> None:
    args = ("p:", "1.5", b"\x00\xffbin", 0, -3, 1795837321.7916415, "ünï", True)
    assert pack_evalsha("a" * 40, args) == pack_command("EVALSHA", "a" * 40, 0, *args)


def test_scripts_are_made_on_first_use() -> None:
    from omniq.storage._backends.redis._lua import Scripts, load_script, script_names

    made: list[str] = []

    def make(text: str) -> int:
        made.append(text)
        return len(made)

    scripts = Scripts(make)
    assert "enqueue_one" in scripts and sorted(scripts) == script_names()
    assert made == []
    assert scripts["enqueue_one"] == scripts["enqueue_one"] == 1
    assert made == [load_script("enqueue_one")]
    with pytest.raises(KeyError):
        scripts["no-such-script"]
