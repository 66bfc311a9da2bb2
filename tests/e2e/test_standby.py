"""Standbys end to end, on every built-in store: while a capped task runs, its worker
claims the key's next task ahead (running in the store, not started) and starts it the
moment the running one ends; a worker that stops hands its standby back unrun, and one
that is SIGKILLed costs it no attempt."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import anyio
import flow_tasks
import pytest
from test_flow_limits import WAIT, _spawn

from omniq.core import OmniQ
from omniq.models import TaskStatus
from omniq.storage.testing import builtin_specs
from omniq.storage.testing.helpers import poll_until

pytestmark = pytest.mark.anyio


def _store(spec_id: str, tmp_path: Path) -> Iterator[str]:
    [spec] = [s for s in builtin_specs() if s.id == spec_id]
    u = spec.url(tmp_path)
    yield u
    if spec.cleanup is not None:
        spec.cleanup(u)


@pytest.fixture(params=[s.id for s in builtin_specs() if s.stands_by])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    yield from _store(request.param, tmp_path)


@pytest.fixture(params=[s.id for s in builtin_specs() if s.stands_by and s.multiprocess])
def shared_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A store that worker processes open themselves."""
    yield from _store(request.param, tmp_path)


def _log(path: Path) -> dict[str, float]:
    """``name event`` -> time, from ``flow_tasks.gated``'s log."""
    if not path.exists():
        return {}
    out: dict[str, float] = {}
    for line in path.read_text().splitlines():
        name, event, t = line.split()
        out[f"{name} {event}"] = float(t)
    return out


async def _status(oq: OmniQ, task_id: str) -> TaskStatus | None:
    got = await oq.get_task(task_id)
    return None if got is None else got.status


async def test_the_next_capped_task_stands_by_and_starts_when_the_slot_frees(
    url: str, tmp_path: Path
) -> None:
    log, gate = tmp_path / "log", tmp_path / "gate"
    async with OmniQ(url, lease_seconds=5.0) as oq:
        a, b = [
            await oq.enqueue(
                flow_tasks.gated, (str(log), name, str(gate)), max_concurrency=1, limit_key="k"
            )
            for name in ("a", "b")
        ]
        async with oq.worker(concurrency=4, worker_type="thread"):
            await poll_until(lambda: _status(oq, b.id), lambda s: s is TaskStatus.RUNNING)
            seen = _log(log)
            assert "a start" in seen and "b start" not in seen  # b is claimed, not started
            [info] = await oq.list_limits()
            assert (info.key, info.running) == ("k", 1)  # a and its standby: one slot
            flow_tasks.open_gate(str(gate))
            for task in (a, b):
                r = await oq.get_result(task.id, wait=True, timeout=WAIT)
                assert r is not None and r.ok and r.attempts == 1, r
        seen = _log(log)
        assert seen["b start"] >= seen["a end"]


async def test_a_stopping_worker_hands_its_standby_back_unrun(url: str, tmp_path: Path) -> None:
    log, gate = tmp_path / "log", tmp_path / "gate"
    try:
        async with OmniQ(url, lease_seconds=5.0) as oq:
            a, b = [
                await oq.enqueue(
                    flow_tasks.gated, (str(log), name, str(gate)), max_concurrency=1, limit_key="k"
                )
                for name in ("a", "b")
            ]
            async with oq.worker(concurrency=4, worker_type="thread", shutdown_grace=0.2):
                await poll_until(lambda: _status(oq, b.id), lambda s: s is TaskStatus.RUNNING)
            back = await oq.get_task(b.id)
            assert back is not None and back.status is TaskStatus.PENDING and back.attempt == 0
            assert "b start" not in _log(log)
            [info] = await oq.list_limits()
            assert info.running == 0
            flow_tasks.open_gate(str(gate))
            async with oq.worker(concurrency=4, worker_type="thread"):
                for task in (a, b):
                    r = await oq.get_result(task.id, wait=True, timeout=WAIT)
                    assert r is not None and r.ok, r
    finally:
        flow_tasks.open_gate(str(gate))  # the first run's thread ends


@pytest.mark.multiprocess
@pytest.mark.slow
async def test_a_sigkilled_workers_standby_runs_elsewhere_as_its_first_attempt(
    shared_url: str, tmp_path: Path
) -> None:
    url = shared_url
    marker, ran = tmp_path / "held", tmp_path / "ran"
    async with OmniQ(url) as oq:
        held = await oq.enqueue(flow_tasks.hold, (str(marker),), max_concurrency=1, limit_key="k")
        nxt = await oq.enqueue(flow_tasks.mark, (str(ran),), max_concurrency=1, limit_key="k")
        first = _spawn(url)
        second = None
        try:
            assert first.stdout is not None and first.stdout.readline().strip() == "worker ready"
            await poll_until(
                lambda: _status(oq, nxt.id), lambda s: s is TaskStatus.RUNNING, deadline=WAIT
            )
            assert marker.read_text() == str(first.pid) and not ran.exists()
            first.send_signal(signal.SIGKILL)
            first.wait(WAIT)
            second = _spawn(url)
            assert second.stdout is not None and second.stdout.readline().strip() == "worker ready"
            r = await oq.get_result(nxt.id, wait=True, timeout=WAIT)
            assert r is not None and r.ok and r.attempts == 1, (
                (r.error, r.attempts) if r else r
            )  # max_retries=0, still run
            again = await oq.get_result(held.id, wait=True, timeout=WAIT)
            assert again is not None and again.ok and again.attempts == 2, again
        finally:
            for p in (first, second):
                if p is not None and p.poll() is None:
                    p.kill()
                    p.wait()


async def test_a_capped_task_with_nothing_behind_it_asks_for_a_standby_once(
    url: str, tmp_path: Path
) -> None:
    """Without held work of its key, a worker asks the store for a standby once per
    capped start, not again while the task runs (each ask is a query on a SQL or Redis
    store)."""
    log, gate = tmp_path / "log", tmp_path / "gate"
    async with OmniQ(url, lease_seconds=5.0) as oq:
        store = oq.queue.tasks
        asked: list[str] = []
        stand = store.claim_standby  # type: ignore[attr-defined]

        async def counted(*args: object, **kw: object) -> object:
            asked.append(str(kw["behind"].task.id))  # type: ignore[attr-defined]
            return await stand(*args, **kw)

        store.claim_standby = counted  # type: ignore[attr-defined]
        a = await oq.enqueue(
            flow_tasks.gated, (str(log), "a", str(gate)), max_concurrency=1, limit_key="k"
        )
        async with oq.worker(concurrency=4, worker_type="thread"):
            await poll_until(lambda: anyio.to_thread.run_sync(_log, log), lambda s: "a start" in s)
            await poll_until(lambda: _asked(asked), bool)
            # Several retries at the longest pause would fit in this window.
            with anyio.move_on_after(0.3):
                await poll_until(lambda: _asked(asked), lambda n: len(n) > 1, deadline=WAIT)
            flow_tasks.open_gate(str(gate))
            r = await oq.get_result(a.id, wait=True, timeout=WAIT)
            assert r is not None and r.ok, r
        assert asked == [a.id]


async def _asked(asked: list[str]) -> list[str]:
    return list(asked)


async def test_a_cancelled_standby_never_starts_and_the_next_task_stands_by(
    url: str, tmp_path: Path
) -> None:
    log, gate = tmp_path / "log", tmp_path / "gate"
    async with OmniQ(url, lease_seconds=5.0) as oq:
        a, b, c = [
            await oq.enqueue(
                flow_tasks.gated, (str(log), name, str(gate)), max_concurrency=1, limit_key="k"
            )
            for name in ("a", "b", "c")
        ]
        async with oq.worker(concurrency=4, worker_type="thread"):
            await poll_until(lambda: _status(oq, b.id), lambda s: s is TaskStatus.RUNNING)
            await oq.cancel(b.id)
            # The worker drops the cancelled standby and stands the key's next task by
            # in its place.
            await poll_until(lambda: _status(oq, c.id), lambda s: s is TaskStatus.RUNNING)
            flow_tasks.open_gate(str(gate))
            for task in (a, c):
                r = await oq.get_result(task.id, wait=True, timeout=WAIT)
                assert r is not None and r.ok, r
        r = await oq.get_result(b.id)
        assert r is not None and r.status is TaskStatus.CANCELLED, r
        assert "b start" not in _log(log)
