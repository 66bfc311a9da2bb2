"""One stored record that does not decode never holds its neighbours: a claim returns
the valid tasks beside it and ends the corrupt one as a dead letter (``error``, with a
``CorruptRecordError`` result); reads skip or stand in for it instead of failing.

The memory backend holds Python objects, never bytes, so it has nothing to corrupt;
the file backends are damaged through their journal, the others with the engine's own
client."""

from __future__ import annotations

import logging
import time
from typing import Any

import anyio
import hardening_tasks as ht
import pytest
from damage import append_garbage_frame, corrupt_result, corrupt_task

from omniq.core import OmniQ
from omniq.models import Task, TaskResult, TaskStatus
from omniq.storage import Backend, open_storage

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.engines("sqlite", "postgres", "redis", "nats", "file-local", "file-memfs"),
]

CORRUPT = "omniq.storage:corrupt_record"


def _tasks(n: int, queue: str = "hq") -> list[Task]:
    return [Task(func="tests.hardening:noop", queue=queue) for _ in range(n)]


async def _reopen(store: Backend, url: str) -> Backend:
    """A second backend on the same store (file-memfs loads its log when it connects)."""
    other = open_storage(url)
    await other.connect()
    return other


def _is_corrupt_dead_letter(task: Task | None, result: TaskResult | None, tid: str) -> None:
    assert task is not None and task.id == tid
    assert task.status is TaskStatus.ERROR
    assert task.func == CORRUPT
    assert "does not decode" in task.metadata["omniq.corrupt"]
    assert result is not None and result.status is TaskStatus.ERROR
    assert result.error is not None and result.error.type.endswith("CorruptRecordError")
    assert "does not decode" in result.error.message


async def test_claim_returns_the_valid_tasks_and_dead_letters_the_corrupt_one(
    backend_id: str, store_and_url: tuple[Backend, str]
) -> None:
    store, url = store_and_url
    assert store.tasks is not None
    tasks = _tasks(6)
    await store.tasks.enqueue(tasks)
    bad = tasks[2]
    await corrupt_task(backend_id, store, url, bad.id)
    b = await _reopen(store, url)
    try:
        assert b.tasks is not None and b.results is not None
        got: list[Any] = []
        deadline = time.monotonic() + 10
        while len(got) < 5:  # NATS may hand out a batch in more than one claim
            got += await b.tasks.claim(["hq"], "w1", limit=10, lease=30)
            assert time.monotonic() < deadline, got
        assert sorted(c.task.id for c in got) == sorted(t.id for t in tasks if t is not bad)
        assert all(c.task.status is TaskStatus.RUNNING for c in got)
        assert await b.tasks.claim(["hq"], "w1", limit=10, lease=30) == []

        stored = await b.tasks.get_one(bad.id)
        _is_corrupt_dead_letter(stored, await b.results.get_one(bad.id), bad.id)
        listed = await b.tasks.list(queue="hq")
        assert sorted(t.id for t in listed) == sorted(t.id for t in tasks)
        errors = await b.tasks.list(queue="hq", status=TaskStatus.ERROR)
        assert [t.id for t in errors] == [bad.id]
        assert await b.tasks.count(queue="hq") == 6
        assert await b.tasks.count(queue="hq", status=TaskStatus.ERROR) == 1
    finally:
        await b.close()


async def test_reads_skip_a_corrupt_pending_record_and_log_it(
    backend_id: str, store_and_url: tuple[Backend, str], caplog: pytest.LogCaptureFixture
) -> None:
    store, url = store_and_url
    assert store.tasks is not None
    tasks = _tasks(3)
    await store.tasks.enqueue(tasks)
    bad = tasks[1]
    await corrupt_task(backend_id, store, url, bad.id)
    b = await _reopen(store, url)
    try:
        assert b.tasks is not None
        with caplog.at_level(logging.WARNING, logger="omniq.storage"):
            listed = await b.tasks.list(queue="hq")
            got = await b.tasks.get([t.id for t in tasks])
        if backend_id.startswith("file"):
            # The journal is replayed when read: the corrupt record is already a dead letter.
            assert sorted(t.id for t in listed) == sorted(t.id for t in tasks)
            assert got[1] is not None and got[1].status is TaskStatus.ERROR
        else:
            assert sorted(t.id for t in listed) == sorted(t.id for t in tasks if t is not bad)
            assert got[1] is None
            assert [t.id if t else None for t in got] == [tasks[0].id, None, tasks[2].id]
        assert bad.id in caplog.text
        # count never decodes where the engine counts rows/index entries; NATS counts
        # the records it decodes.
        assert await b.tasks.count(queue="hq") == (2 if backend_id == "nats" else 3)
    finally:
        await b.close()


async def test_a_corrupt_result_reads_as_missing(
    backend_id: str, store_and_url: tuple[Backend, str], caplog: pytest.LogCaptureFixture
) -> None:
    store, url = store_and_url
    assert store.results is not None
    results = [TaskResult(task_id=f"r{i}", status=TaskStatus.SUCCESS, value=i) for i in range(3)]
    await store.results.put(results)
    await corrupt_result(backend_id, store, url, "r1")
    with caplog.at_level(logging.WARNING, logger="omniq.storage"):
        got = await store.results.get(["r0", "r1", "r2"])
    assert [r.task_id if r else None for r in got] == ["r0", None, "r2"]
    assert "r1" in caplog.text


async def test_a_worker_runs_the_batch_around_a_corrupt_record(
    backend_id: str, store_and_url: tuple[Backend, str]
) -> None:
    store, url = store_and_url
    async with OmniQ(url, lease_seconds=10.0) as oq:
        built = [oq.build(ht.double, (i,)) for i in range(30)]
        await oq.enqueue_many(built)
    bad = built[7]
    await corrupt_task(backend_id, store, url, bad.id, queue=bad.queue)
    async with OmniQ(url, lease_seconds=10.0) as oq:
        with anyio.fail_after(30):
            await oq.run_worker(burst=True, concurrency=8)
        for i, t in enumerate(built):
            if t is bad:
                continue
            r = await oq.get_result(t.id)
            assert r is not None and r.status is TaskStatus.SUCCESS, (i, r)
            assert r.value == 2 * i
        letters = await oq.dead_letters()
        assert [d.task.id for d in letters] == [bad.id]
        assert "CorruptRecordError" in letters[0].error
        assert "does not decode" in letters[0].error


@pytest.mark.engines("file-local", "file-memfs")
async def test_a_journal_frame_that_does_not_decode_is_skipped(
    backend_id: str, store_and_url: tuple[Backend, str], caplog: pytest.LogCaptureFixture
) -> None:
    store, url = store_and_url
    assert store.tasks is not None
    tasks = _tasks(3)
    await store.tasks.enqueue(tasks)
    await append_garbage_frame(backend_id, store)
    with caplog.at_level(logging.WARNING, logger="omniq.storage"):
        b = await _reopen(store, url)
        try:
            assert b.tasks is not None
            got = await b.tasks.claim(["hq"], "w1", limit=10, lease=30)
            assert sorted(c.task.id for c in got) == sorted(t.id for t in tasks)
            more = _tasks(1)
            await b.tasks.enqueue(more)  # the journal still takes new frames
            assert [c.task.id for c in await b.tasks.claim(["hq"], "w1")] == [more[0].id]
        finally:
            await b.close()
    assert "journal frame that does not decode" in caplog.text
