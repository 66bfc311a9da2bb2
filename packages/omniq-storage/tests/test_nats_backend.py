"""NATS JetStream backend specifics (the contracts themselves are in tests/conformance):
durable stream settings, URL options, unsafe names, timers, re-enqueue after purge."""

from __future__ import annotations

import os

import pytest

from omniq.models import BackendUnavailableError, StorageError, Task, TaskStatus, now
from omniq.storage import Completion, open_storage
from omniq.storage._backends.nats._backend import NatsBackend
from omniq.storage._backends.nats._conn import token

pytestmark = pytest.mark.anyio
NATS_URL = os.environ.get("OMNIQ_TEST_NATS_URL", "nats://127.0.0.1:4222")


@pytest.fixture
def backend(nats_backend: NatsBackend) -> NatsBackend:
    return nats_backend


def _task(**kw: object) -> Task:
    kw.setdefault("func", "tests:noop")
    return Task(**kw)  # type: ignore[arg-type]


async def test_streams_are_durable_file_storage(backend: NatsBackend) -> None:
    js = backend.js
    work = await js.api(f"STREAM.INFO.{backend.work_stream}")
    assert work["config"]["storage"] == "file"
    assert work["config"]["retention"] == "workqueue"
    assert work["config"]["num_replicas"] == 1
    for bucket in (backend.tasks_bucket, backend.results_bucket, backend.sched_bucket):
        info = await js.api(f"STREAM.INFO.KV_{bucket}")
        assert info["config"]["storage"] == "file"
        assert info["config"]["max_msgs_per_subject"] == 1
    consumer = await js.api(f"CONSUMER.INFO.{backend.work_stream}.timer-eta")
    assert consumer["config"]["ack_policy"] == "explicit"


async def test_url_options_and_bad_namespace() -> None:
    be = NatsBackend(f"{NATS_URL}?namespace=ABC&replicas=3")
    assert be.ns == "ABC" and be.replicas == 3 and be.tasks_bucket == "ABC_TASKS"
    with pytest.raises(StorageError):
        NatsBackend(f"{NATS_URL}?namespace=bad.name")
    with pytest.raises(StorageError):
        _ = NatsBackend(NATS_URL).js  # not connected


async def test_unreachable_server_raises_backend_unavailable() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    be = NatsBackend(f"nats://127.0.0.1:{port}", connect_deadline=0.5)
    with pytest.raises(BackendUnavailableError):
        await be.connect()


def test_token_keeps_safe_names_and_hashes_others() -> None:
    assert token("default") == "default"
    assert token("a.b c") != "a.b c" and token("a.b c").startswith("_h")
    assert token("a.b c") == token("a.b c") != token("a.b d")
    assert token("_hx") != "_hx"  # cannot collide with a hashed name


async def test_queue_names_that_are_not_subject_tokens(backend: NatsBackend) -> None:
    q = backend.tasks
    assert q is not None
    odd = "emails.high priority>*"
    t = _task(queue=odd)
    await q.enqueue([t])
    assert await q.claim(["other"], "w") == []
    [c] = await q.claim([odd], "w")
    assert c.task.id == t.id and c.task.queue == odd
    assert await q.counts() == {(odd, TaskStatus.RUNNING): 1}


async def test_delayed_task_woken_by_timer_across_backends(backend: NatsBackend) -> None:
    """An eta timer set by one connection wakes a waiter on another at the eta."""
    q = backend.tasks
    assert q is not None
    async with open_storage(backend.url) as other:
        assert other.tasks is not None
        await q.enqueue([_task(eta=now() + 0.3)])
        start = now()
        assert await other.tasks.wait_for_work(["default"], 5.0)
        assert now() - start < 2.0
        [c] = await other.tasks.claim(["default"], "w")
        assert c.task.eta is not None and now() >= c.task.eta


async def test_reenqueue_after_purge_and_key_reuse(backend: NatsBackend) -> None:
    q = backend.tasks
    assert q is not None
    t = _task(key="nightly")
    await q.enqueue([t])
    [c] = await q.claim(["default"], "w")
    await q.complete([Completion(t.id, c.token)])
    assert await q.purge(finished_before=now() + 1) == 1
    assert await q.get_one(t.id) is None
    [again] = await q.enqueue([t])  # same id over the purged record's tombstone
    assert again.id == t.id and again.status is TaskStatus.PENDING
    assert (await q.get_one(t.id)) is not None
    [dup] = await q.enqueue([_task(key="nightly")])
    assert dup.id == t.id  # the key is held again by the live re-enqueued task


async def test_stale_work_messages_are_dropped(backend: NatsBackend) -> None:
    """A cancelled task's work message is consumed without a claim; the queue drains."""
    q = backend.tasks
    assert q is not None
    a, b = _task(), _task()
    await q.enqueue([a, b])
    await q.cancel([a.id])
    got = await q.claim(["default"], "w", limit=10)
    assert [c.task.id for c in got] == [b.id]
    assert await q.claim(["default"], "w", limit=10) == []
    assert await q.wait_for_work(["default"], 0.05) is False


async def test_sweep_purges_skip_their_scan_when_nothing_can_be_due(
    backend: NatsBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worker's sweep purges every second; on NATS each purge reads the whole bucket,
    so after one scan the next ones skip theirs until something can be due."""
    from omniq.models import TaskResult

    await backend.tasks.enqueue([_task(queue="sw")])
    [c] = await backend.tasks.claim(["sw"], "w")
    await backend.tasks.complete([Completion(c.task.id, c.token, TaskStatus.SUCCESS)])
    await backend.results.put(
        [TaskResult(task_id=c.task.id, status=TaskStatus.SUCCESS, expires_at=now() + 3600)]
    )
    retention = 3600.0
    assert await backend.tasks.purge(finished_before=now() - retention) == 0
    assert await backend.results.purge_expired() == 0
    scans: list[str] = []
    real = backend.js.scan

    async def counting(stream: str, subject: str, *, last_per_subject: bool) -> list[object]:
        scans.append(subject)
        return await real(stream, subject, last_per_subject=last_per_subject)  # type: ignore[return-value]

    monkeypatch.setattr(backend.js, "scan", counting)
    for _ in range(3):
        assert await backend.tasks.purge(finished_before=now() - retention) == 0
        assert await backend.results.purge_expired() == 0
    assert scans == []
    # Something due (a cutoff past a kept finish time; a result put expiring now): scans.
    assert await backend.tasks.purge(finished_before=now() + 1) == 1
    gone = TaskResult(task_id="gone", status=TaskStatus.SUCCESS, expires_at=now() - 1)
    await backend.results.put([gone])
    assert await backend.results.purge_expired() == 1
    assert len(scans) == 2
