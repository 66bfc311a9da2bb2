"""PostgreSQL-specific behaviour: migrations, schema isolation, LISTEN/NOTIFY wake-ups."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import anyio
import pytest

from omniq.models import Task, TaskStatus, now
from omniq.storage import Completion, open_storage
from omniq.storage._backends.postgres._backend import PostgresBackend
from omniq.storage._backends.postgres._sql import MIGRATIONS, QUERIES
from omniq.storage.testing.helpers import poll_until

pytestmark = pytest.mark.anyio
BASE = "postgresql://postgres@127.0.0.1:5432/test"
LIMITED = QUERIES["claim_limited"]


@pytest.fixture
async def schema() -> AsyncIterator[str]:
    name = f"omniq_pgtest_{uuid.uuid4().hex[:10]}"
    yield name
    async with PostgresBackend(BASE, schema=name) as be:
        await be.drop()


async def test_concurrent_first_start_migrates_once(schema: str) -> None:
    backends = [PostgresBackend(f"{BASE}?schema={schema}") for _ in range(4)]
    async with anyio.create_task_group() as tg:
        for be in backends:
            tg.start_soon(be.connect)
    try:
        versions = await backends[0].run(lambda c: c.fetch("SELECT version FROM omniq_migrations"))
        assert [r[0] for r in versions] == [v for v, _ in MIGRATIONS]
        await backends[1].connect()  # idempotent
        assert backends[0].tasks is not None
        [t] = await backends[0].tasks.enqueue([Task(func="m:f")])
        assert backends[3].tasks is not None
        assert await backends[3].tasks.get_one(t.id) is not None
    finally:
        for be in backends:
            await be.close()


async def test_schema_made_by_migration_1_alone_is_upgraded(schema: str) -> None:
    """A schema that recorded only migration 1 gets migration 2 on connect, and the
    dependency resolver then still releases and cancels dependents."""
    import asyncpg  # type: ignore[import-untyped]

    conn = await asyncpg.connect(BASE)
    try:
        async with conn.transaction():
            await conn.execute(f'CREATE SCHEMA "{schema}"')
            await conn.execute(f'SET LOCAL search_path TO "{schema}"')
            await conn.execute(
                "CREATE TABLE omniq_migrations "
                "(version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            await conn.execute(MIGRATIONS[0][1])
            await conn.execute("INSERT INTO omniq_migrations (version) VALUES (1)")
    finally:
        await conn.close()
    async with PostgresBackend(f"{BASE}?schema={schema}") as be:
        versions = await be.run(lambda c: c.fetch("SELECT version FROM omniq_migrations"))
        assert [r[0] for r in versions] == [v for v, _ in MIGRATIONS]
        parent, other = Task(func="m:f"), Task(func="m:f")
        child = Task(func="m:f", depends_on=(parent.id,))
        doomed = Task(func="m:f", depends_on=(other.id,))
        await be.tasks.enqueue([parent, other, child, doomed])
        claimed = {c.task.id: c for c in await be.tasks.claim(["default"], "w", limit=10)}
        assert set(claimed) == {parent.id, other.id}
        report = await be.tasks.complete(
            [
                Completion(parent.id, claimed[parent.id].token),
                Completion(other.id, claimed[other.id].token, TaskStatus.ERROR),
            ]
        )
        assert report.released == [child.id]
        assert [t.id for t in report.cancelled] == [doomed.id]


async def test_schemas_are_isolated(schema: str) -> None:
    other = f"{schema}_b"
    async with (
        open_storage(f"{BASE}?schema={schema}") as a,
        open_storage(f"{BASE}?schema={other}") as b,
    ):
        assert a.tasks is not None and b.tasks is not None
        await a.tasks.enqueue([Task(func="m:f")])
        assert await a.tasks.count() == 1
        assert await b.tasks.count() == 0
        await b.drop()  # type: ignore[attr-defined]


async def test_notify_wakes_worker_in_other_connection(schema: str) -> None:
    url = f"{BASE}?schema={schema}"
    async with open_storage(url) as worker, open_storage(url) as producer:
        assert worker.tasks is not None and producer.tasks is not None
        woke: list[float] = []

        async def wait() -> None:
            assert worker.tasks is not None
            if await worker.tasks.wait_for_work(["default"], 10):
                woke.append(now())

        async with anyio.create_task_group() as tg:
            tg.start_soon(wait)
            await anyio.sleep(0.2)  # the waiter is blocked on LISTEN, not polling
            sent = now()
            await producer.tasks.enqueue([Task(func="m:f")])
        assert woke and woke[0] - sent < 1.0


async def test_events_are_plain_jsonb(schema: str) -> None:
    from omniq.models import EventType, TaskEvent

    async with PostgresBackend(f"{BASE}?schema={schema}") as be:
        assert be.events is not None
        await be.events.append(
            [TaskEvent(task_id="t1", type=EventType.COMPLETE, metadata={"a": 1})]
        )
        row = await be.run(lambda c: c.fetchrow("SELECT type, metadata->>'a' AS a FROM events"))
        assert row["type"] == "COMPLETE" and row["a"] == "1"


async def test_plain_enqueue_batch_with_repeats_and_key_collisions(schema: str) -> None:
    """The set-based enqueue path hands repeated ids and live-key collisions (within the
    batch and against stored tasks) to the per-row function, in order."""
    async with PostgresBackend(f"{BASE}?schema={schema}") as be:
        assert be.tasks is not None
        a = Task(func="m:f", key="k1")
        await be.tasks.enqueue([a])
        b = Task(func="m:f")
        c = Task(func="m:f", key="k1")  # collides with a (stored, live)
        d = Task(func="m:f", key="k2")
        e = Task(func="m:f", key="k2")  # collides with d (same batch)
        out = await be.tasks.enqueue([b, c, b, d, e, a])
        assert [t.id for t in out] == [b.id, a.id, b.id, d.id, d.id, a.id]
        assert await be.tasks.count() == 3


async def test_synchronous_commit_is_opt_in(schema: str) -> None:
    async with PostgresBackend(f"{BASE}?schema={schema}") as be:
        default = await be.run(lambda c: c.fetchval("SHOW synchronous_commit"))
    async with PostgresBackend(f"{BASE}?schema={schema}&synchronous_commit=off") as be:
        assert await be.run(lambda c: c.fetchval("SHOW synchronous_commit")) == "off"
    assert default != "off"


async def _churn(be: PostgresBackend, n: int) -> None:
    """Run ``n`` tasks through the queue: every one claimed and completed."""
    assert be.tasks is not None
    await be.tasks.enqueue([Task(func="m:f") for _ in range(n)])
    while claims := await be.tasks.claim(["default"], "w", limit=500):
        await be.tasks.complete(
            [Completion(c.task.id, c.token, TaskStatus.SUCCESS) for c in claims]
        )


async def _vacuums(be: PostgresBackend, table: str) -> int:
    return int(
        await be.run(
            lambda c: c.fetchval(
                "SELECT vacuum_count FROM pg_stat_user_tables "
                "WHERE schemaname = current_schema() AND relname = $1",
                table,
            )
        )
    )


@pytest.mark.slow
async def test_maintenance_vacuums_the_tasks_table_once_dead_rows_pile_up(schema: str) -> None:
    """Claims and completions leave dead row versions; the workers' sweep
    (``maintain``) vacuums the table in the background once they pass the threshold,
    without waiting for autovacuum (off on the test server)."""
    async with PostgresBackend(f"{BASE}?schema={schema}") as be:
        assert be.tasks is not None
        be.vacuumer.interval = 0.05
        await _churn(be, 3000)  # 6,000 dead row versions

        async def sweep() -> int:
            await be.tasks.maintain()
            return await _vacuums(be, "tasks")

        await poll_until(sweep, lambda n: n > 0, deadline=20)
        # Claims keep working during and after it.
        [t] = await be.tasks.enqueue([Task(func="m:f")])
        [c] = await be.tasks.claim(["default"], "w")
        assert c.task.id == t.id


async def test_maintenance_is_off_with_vacuum_off_and_leaves_a_clean_table_alone(
    schema: str,
) -> None:
    async with PostgresBackend(f"{BASE}?schema={schema}&vacuum=off") as be:
        assert be.tasks is not None
        assert not be.vacuumer.enabled
        await be.tasks.maintain()
        assert be.vacuumer._task is None
    async with PostgresBackend(f"{BASE}?schema={schema}") as be:
        assert be.vacuumer.enabled
        assert await be.vacuumer.run_once() == []  # nothing dead: nothing vacuumed


async def test_hot_tables_carry_eager_autovacuum_settings(schema: str) -> None:
    async with PostgresBackend(f"{BASE}?schema={schema}") as be:
        opts = await be.run(
            lambda c: c.fetchval(
                "SELECT reloptions FROM pg_class "
                "WHERE relname = 'tasks' AND relnamespace = current_schema()::regnamespace"
            )
        )
    assert "autovacuum_vacuum_scale_factor=0.02" in opts


async def test_purge_deletes_a_backlog_larger_than_one_batch(
    schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``purge`` deletes in batches (one transaction each) until nothing is left."""
    from omniq.storage._backends.postgres import _tasks

    monkeypatch.setattr(_tasks, "PURGE_BATCH", 40)
    async with PostgresBackend(f"{BASE}?schema={schema}") as be:
        assert be.tasks is not None
        await _churn(be, 130)
        [keep] = await be.tasks.enqueue([Task(func="m:f")])
        assert await be.tasks.purge(finished_before=now() + 1) == 130
        assert await be.tasks.count() == 1
        assert await be.tasks.get_one(keep.id) is not None


class _Statements:
    """The backend's connections, recording the SQL text of every statement sent (the
    statements still run on the real server)."""

    def __init__(self, conn: Any, sent: list[str]) -> None:
        self._conn = conn
        self._sent = sent

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._conn, name)
        if name not in ("fetch", "fetchrow", "fetchval", "execute"):
            return attr

        async def send(sql: str, *args: Any) -> Any:
            self._sent.append(sql)
            return await attr(sql, *args)

        return send


def _record_statements(be: PostgresBackend) -> list[str]:
    sent: list[str] = []
    call = be.call

    async def recording(fn: Callable[[Any], Awaitable[Any]]) -> Any:
        return await call(lambda c: fn(_Statements(c, sent)))

    be.call = recording  # type: ignore[method-assign]
    return sent


async def test_a_claim_without_limited_tasks_is_one_statement(schema: str) -> None:
    """A claim that comes back short runs the limited claim only while flow-limited
    tasks may be claimable; plain tasks never pay its round trip."""
    async with PostgresBackend(f"{BASE}?schema={schema}") as be:
        assert be.tasks is not None
        sent = _record_statements(be)
        plain = await be.tasks.enqueue([Task(func="m:f") for _ in range(2)])
        del sent[:]
        got = await be.tasks.claim(["default"], "w", limit=5)
        assert {c.task.id for c in got} == {t.id for t in plain}
        assert await be.tasks.claim(["default", "other"], "w", limit=5) == []
        assert len(sent) == 2
        assert LIMITED not in sent

        capped = [Task(func="m:f", max_concurrency=1) for _ in range(2)]
        await be.tasks.enqueue(capped)
        del sent[:]
        [c] = await be.tasks.claim(["default"], "w", limit=5)
        assert c.task.id == capped[0].id
        assert await be.tasks.claim(["default"], "w", limit=5) == []
        assert be.tasks.limited == ["m:f"]  # held back by its cap
        assert sent.count(LIMITED) == 2

        await be.tasks.complete([Completion(c.task.id, c.token)])
        [c2] = await be.tasks.claim(["default"], "w", limit=5)
        assert c2.task.id == capped[1].id
        await be.tasks.complete([Completion(c2.task.id, c2.token)])
        del sent[:]
        assert await be.tasks.claim(["default"], "w", limit=5) == []
        assert be.tasks.limited == []
        assert LIMITED not in sent


async def test_single_enqueue_and_finish_are_one_statement_each(schema: str) -> None:
    """The paths every task takes: enqueue one task, claim it, store its result and
    complete it, one statement (one round trip, one commit) each."""
    from omniq.models import Payload, TaskResult

    async with PostgresBackend(f"{BASE}?schema={schema}") as be:
        assert be.tasks is not None and be.results is not None
        sent = _record_statements(be)
        [t] = await be.tasks.enqueue([Task(func="m:f")])
        assert t.status is TaskStatus.PENDING
        assert len(sent) == 1
        [again] = await be.tasks.enqueue([t])  # a stored id: the stored task comes back
        assert again.id == t.id and again.status is TaskStatus.PENDING
        [c] = await be.tasks.claim(["default"], "w")
        del sent[:]
        result = TaskResult(
            task_id=t.id,
            status=TaskStatus.SUCCESS,
            payload=Payload("msgpack", b"\x2a"),
            attempts=1,
            finished_at=now(),
        )
        report = await be.tasks.finish(
            [Completion(t.id, c.token)], [result], be.results, lease=30.0
        )
        assert report.done == [t.id] and report.stale == []
        assert len(sent) == 1
        assert await be.results.get_one(t.id) == result
        done = await be.tasks.get_one(t.id)
        assert done is not None and done.status is TaskStatus.SUCCESS


async def test_completion_functions_plan_each_batch(schema: str) -> None:
    """A cached generic plan joined a completion batch to the running rows by a nested
    loop over both (quadratic in the batch): batches of more than a few tasks are
    planned at each call (``omniq_complete_batch``, ``omniq_requeue``); a batch of up to
    8 ends row by row, each a primary-key update whose cached plan stays cheap."""
    async with PostgresBackend(f"{BASE}?schema={schema}") as be:
        rows = await be.run(
            lambda c: c.fetch(
                "SELECT proname, proconfig FROM pg_proc WHERE pronamespace = "
                "current_schema()::regnamespace AND proname IN "
                "('omniq_complete', 'omniq_complete_batch', 'omniq_requeue')"
            )
        )
    assert {r["proname"]: r["proconfig"] for r in rows} == {
        "omniq_complete": None,
        "omniq_complete_batch": ["plan_cache_mode=force_custom_plan"],
        "omniq_requeue": ["plan_cache_mode=force_custom_plan"],
    }


@pytest.mark.parametrize("n", [1, 3, 8, 9, 40])
async def test_completion_batches_small_and_large_end_the_same(schema: str, n: int) -> None:
    """Either side of the row-by-row limit, a completion ends the leased tasks in their
    statuses, refuses a stale token and a task already ended, and releases a dependent."""
    async with PostgresBackend(f"{BASE}?schema={schema}") as be:
        q = be.tasks
        assert q is not None
        tasks = [Task(func="m:f", queue="cb") for _ in range(n)]
        await q.enqueue(tasks)
        child = Task(func="m:g", queue="cb-child", depends_on=(tasks[0].id,))
        await q.enqueue([child])
        claims = await q.claim(["cb"], "w", limit=n)
        assert len(claims) == n
        statuses = [TaskStatus.SUCCESS if i % 2 == 0 else TaskStatus.ERROR for i in range(n)]
        comps = [Completion(c.task.id, c.token, st) for c, st in zip(claims, statuses, strict=True)]
        stale = Completion(claims[-1].task.id, "not-the-token", TaskStatus.SUCCESS)
        batch = [*comps[:-1], stale] if n > 1 else comps
        by_id = {c.task.id: st for c, st in zip(claims, statuses, strict=True)}
        first = await q.complete(batch)
        ended = [c.task_id for c in batch if c.token != "not-the-token"]
        assert sorted(first.done) == sorted(ended)
        assert first.stale == ([stale.task_id] if n > 1 else [])
        assert first.released == [child.id]  # tasks[0] succeeded
        again = await q.complete(comps)  # every id again: only the one left ends now
        assert again.done == ([claims[-1].task.id] if n > 1 else [])
        assert sorted(again.stale) == sorted(ended)
        for t in await q.get([c.task.id for c in claims]):
            assert t is not None and t.status is by_id[t.id]


async def test_finish_and_claim_takes_the_freed_slot_in_one_transaction(schema: str) -> None:
    """A worker ending a capped task stores its outcome and claims for the slot it
    freed in one transaction: the next task of the key, and no more than the cap."""
    from omniq.models import Payload, TaskResult

    async with PostgresBackend(f"{BASE}?schema={schema}") as be:
        assert be.tasks is not None and be.results is not None
        capped = [Task(func="m:f", max_concurrency=1) for _ in range(3)]
        await be.tasks.enqueue(capped)
        [c] = await be.tasks.claim(["default"], "w", limit=5)
        result = TaskResult(
            task_id=c.task.id,
            status=TaskStatus.SUCCESS,
            payload=Payload("msgpack", b"\x2a"),
            attempts=1,
            finished_at=now(),
        )
        done = await be.tasks.finish_and_claim(
            [Completion(c.task.id, c.token)],
            [result],
            be.results,
            lease=30.0,
            queues=["default"],
            worker_id="w",
            limit=5,
        )
        assert done is not None
        report, claims = done
        assert report.done == [c.task.id] and report.stale == []
        assert [x.task.id for x in claims] == [capped[1].id]  # the cap: one at a time
        assert claims[0].task.status is TaskStatus.RUNNING and claims[0].task.attempt == 1
        assert be.tasks.limited == ["m:f"]  # the third held back
        assert await be.results.get_one(c.task.id) == result
        # The same lease again: stale, nothing finished, and the slot is still taken.
        again = await be.tasks.finish_and_claim(
            [Completion(c.task.id, c.token)],
            [result],
            be.results,
            lease=30.0,
            queues=["default"],
            worker_id="w",
            limit=5,
        )
        assert again is not None and again[0].stale == [c.task.id] and again[1] == []
        # Without results to store with it, the caller finishes and claims apart.
        assert (
            await be.tasks.finish_and_claim(
                [Completion(claims[0].task.id, claims[0].token)],
                [],
                be.results,
                lease=30.0,
                queues=["default"],
                worker_id="w",
                limit=5,
            )
            is None
        )
