"""NATS reads answered by a bucket's stream leader (``JS.kv_get(..., leader=True)``, and
every read of a replicated namespace) mean what a direct get means: the value and
revision of a key, ``(None, 0)`` for a key never written, ``(None, revision)`` for a
deleted or purged one. Checked on the real server against the direct get."""

from __future__ import annotations

import pytest

from omniq.models import Task
from omniq.storage._backends.nats._backend import NatsBackend

pytestmark = pytest.mark.anyio


@pytest.fixture
def backend(nats_backend: NatsBackend) -> NatsBackend:
    return nats_backend


async def test_leader_reads_match_direct_gets(backend: NatsBackend) -> None:
    js, bucket = backend.js, backend.keys_bucket
    assert await js.kv_put(bucket, "kept", b"value") is not None
    assert await js.kv_put(bucket, "empty", b"") is not None
    assert await js.kv_put(bucket, "deleted", b"gone") is not None
    assert await js.kv_put(bucket, "purged", b"gone") is not None
    await js.publish(f"$KV.{bucket}.deleted", b"", {"KV-Operation": "DEL"})
    assert await js.kv_purge(bucket, "purged")
    keys = ["kept", "empty", "deleted", "purged", "never"]

    direct = await js.kv_get_many(bucket, keys)
    leader = await js.kv_get_many(bucket, keys, leader=True)

    assert leader == direct
    kept, empty, deleted, purged, never = leader
    assert kept[0] == b"value" and kept[1] > 0
    assert empty[0] in (b"", None) and empty[1] > kept[1]
    assert deleted[0] is None and deleted[1] > empty[1]
    assert purged[0] is None and purged[1] > deleted[1]
    assert never == (None, 0)
    assert await js.kv_get(bucket, "kept", leader=True) == kept


async def test_replicated_backend_reads_tasks_through_the_leader(backend: NatsBackend) -> None:
    """With ``replicated`` set (a backend with replicas), task reads take the leader
    path; on one server they must return what the direct gets return."""
    q = backend.tasks
    assert q is not None
    t = Task(func="tests:noop")
    await q.enqueue([t])
    direct = await q.get([t.id, "missing"])
    backend.js.replicated = True
    try:
        via_leader = await q.get([t.id, "missing"])
    finally:
        backend.js.replicated = False
    assert direct[0] is not None and direct[1] is None
    assert via_leader[0] is not None and via_leader[1] is None
    assert via_leader[0].id == t.id and via_leader[0].status is direct[0].status
