"""PostgreSQL beyond one server: a multi-host DSN failing over to a promoted standby
during a run, and a PgBouncer in transaction pooling mode in front of the server."""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import anyio
import chaos_tasks as ct
import pytest
from _nodes import PgBouncer, PgNode, PgPair, free_port
from chaos_fleet import Fleet, audit, record

from omniq.core import OmniQ
from omniq.models import BackendUnavailableError, StorageError, Task, TaskStatus
from omniq.storage import open_storage
from omniq.storage.testing.helpers import poll_until

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

LEASE = 2.0


async def _count(url: str, ids: list[str]) -> int | None:
    """How many of ``ids`` are successful (None while the engine is unreachable)."""
    try:
        async with open_storage(url) as backend:
            assert backend.tasks is not None
            done = 0
            for i in range(0, len(ids), 1000):
                got = await backend.tasks.get(ids[i : i + 1000])
                done += sum(1 for t in got if t is not None and t.status is TaskStatus.SUCCESS)
            return done
    except (BackendUnavailableError, StorageError, OSError):
        return None


async def test_multi_host_dsn_fails_over_to_promoted_standby(tmp_path: Path) -> None:
    pair = PgPair(14432, 14433, sync=True).start()
    fleet: Fleet | None = None
    n_batches, batch = 30, 100
    try:
        url = pair.url(schema="omniq_failover")
        events = f"sqlite:///{tmp_path / 'events.db'}"
        ledger = tmp_path / "ledger"
        cfg = {"url": url, "events": events, "lease": LEASE, "concurrency": 8}
        acked: list[Task] = []
        tag_of: dict[str, str] = {}
        unacked = 0
        promoted_at = 0.0
        async with OmniQ(url, url, events, lease_seconds=LEASE) as oq:
            fleet = Fleet(cfg, tmp_path, size=2).start()
            # Both workers are connected before the primary dies (one that first connects
            # while neither host accepts writes fails to start).
            await poll_until(oq.list_workers, lambda ws: len(ws) >= 2, deadline=60.0)
            t0 = time.monotonic()
            for b in range(n_batches):
                tags = [f"b{b}-{i}" for i in range(batch)]
                tasks = [
                    oq.build(ct.awork, (str(ledger), tag, 0.002), max_retries=20) for tag in tags
                ]
                if b == n_batches // 3:  # the primary dies; the standby is promoted
                    pair.primary.kill()
                    pair.standby.promote()
                    promoted_at = time.monotonic()
                end = time.monotonic() + 30
                while True:
                    try:
                        await oq.enqueue_many(tasks)
                        acked += tasks
                        tag_of.update((t.id, tags[j]) for j, t in enumerate(tasks))
                        break
                    except BackendUnavailableError:
                        # no acknowledgement: these tasks are not promised; try new ones
                        unacked += len(tasks)
                        tags = [f"b{b}-r{i}-{time.monotonic_ns()}" for i in range(batch)]
                        tasks = [
                            oq.build(ct.awork, (str(ledger), tag, 0.002), max_retries=20)
                            for tag in tags
                        ]
                        assert time.monotonic() < end, "no enqueue succeeded after failover"
                        await anyio.sleep(0.1)
        ids = [t.id for t in acked]
        deadline = time.monotonic() + 90
        while (await _count(url, ids) or 0) < len(ids):
            assert time.monotonic() < deadline, f"not drained\n{fleet.logs()}"
            assert not fleet.replace_dead(), f"a worker died\n{fleet.logs()}"
            await anyio.sleep(0.2)
        elapsed = time.monotonic() - t0
        fleet.stop()
        tags = [tag_of[t.id] for t in acked]
        a = await audit(url, acked, tags, ledger, workers=fleet.all_pids,
                        interrupted=fleet.killed, events_url=events)  # fmt: skip
    finally:
        if fleet is not None:
            fleet.close()
        pair.close()
    record(
        a.line("postgres primary killed, standby promoted", kills=0, seconds=elapsed,
               extra=f"unacknowledged={unacked} promoted_after={promoted_at - t0:.1f}s")
    )  # fmt: skip
    assert not a.lost, (a.statuses, a.lost[:5])
    assert a.succeeded == len(acked)
    assert not a.duplicate_completions, a.duplicate_completions[:5]


async def test_pgbouncer_transaction_pooling(tmp_path: Path) -> None:
    root = Path(tempfile.mkdtemp(prefix="omniq-pg-bouncer-"))
    shutil.chown(root, "postgres", "postgres")
    server = PgNode(root, "server", free_port())
    server.init_primary()
    server.start()
    bouncer = PgBouncer(free_port(), server.port, "omniq_bouncer").start()
    fleet: Fleet | None = None
    try:
        url = bouncer.url(schema="omniq_bouncer")
        events = f"sqlite:///{tmp_path / 'events.db'}"
        ledger = tmp_path / "ledger"
        n = 1000
        tags = [f"t{i}" for i in range(n)]
        async with OmniQ(url, url, events, lease_seconds=LEASE) as oq:
            tasks = [oq.build(ct.awork, (str(ledger), t, 0.002)) for t in tags]
            await oq.enqueue_many(tasks)
            fleet = Fleet({"url": url, "events": events, "lease": LEASE, "concurrency": 8},
                          tmp_path, size=2).start()  # fmt: skip
            # result waits poll (no LISTEN through the pooler) and still see the result
            res = await oq.get_result(tasks[-1], wait=True, timeout=60)
            assert res is not None and res.status is TaskStatus.SUCCESS
        t0 = time.monotonic()
        while (await _count(url, [t.id for t in tasks]) or 0) < n:
            assert time.monotonic() - t0 < 60, f"not drained\n{fleet.logs()}"
            await anyio.sleep(0.2)
        fleet.stop()
        a = await audit(url, tasks, tags, ledger, workers=fleet.all_pids,
                        interrupted=fleet.killed, events_url=events)  # fmt: skip
        assert not a.lost and a.succeeded == n
        assert not a.duplicate_completions
        # Without the server-side search_path the backend refuses to run elsewhere.
        with pytest.raises(StorageError, match="search_path"):
            async with open_storage(bouncer.url(schema="omniq_other")):
                pass
    finally:
        if fleet is not None:
            fleet.close()
        bouncer.close()
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
