"""The blocking API from a script, from threads, inside a running loop, after fork;
the decorator; mixing the async and sync APIs."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import e2e_tasks as t
import pytest

from omniq.core import OmniQ
from omniq.events.bridge import loop_factory
from omniq.models import ConfigError, OmniQError, TaskStatus
from omniq.queue import SyncInAsyncWarning

WAIT = 20.0


def test_plain_script_style(make_oq: Callable[..., OmniQ]) -> None:
    with make_oq() as oq:
        task = oq.enqueue_sync(t.add, (20, 22))
        stats = oq.run_worker_sync(burst=True)
        assert stats.succeeded >= 1
        r = oq.get_result_sync(task.id)
        assert r is not None and r.value == 42
        assert [x.id for x in oq.list_tasks_sync(status="success")] == [task.id]
        assert oq.counts_sync()[("default", TaskStatus.SUCCESS)] == 1


@pytest.mark.parametrize(
    ("setting", "expected"),
    [("auto", "uvloop."), ("uvloop", "uvloop."), ("asyncio", "asyncio.")],
)
def test_event_loop_setting_picks_the_loop_of_sync_calls_and_workers(
    make_oq: Callable[..., OmniQ], setting: str, expected: str
) -> None:
    # uvloop is installed in the dev environment, so auto picks it.
    with make_oq(event_loop=setting) as oq:
        task = oq.enqueue_sync(t.loop_kind)
        oq.run_worker_sync(burst=True)
        r = oq.get_result_sync(task.id)
        assert r is not None and r.ok, r
        assert r.value.startswith(expected), r.value


def test_event_loop_uvloop_without_uvloop_is_a_config_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # makes `import uvloop` fail
    with pytest.raises(ConfigError, match=r"event_loop='uvloop'.*uvloop is not installed"):
        OmniQ("memory://", event_loop="uvloop")
    assert loop_factory("auto") is asyncio.new_event_loop  # auto falls back quietly


def test_event_loop_auto_keeps_asyncio_under_gevent_monkey_patching() -> None:
    code = (
        "from gevent import monkey; monkey.patch_all()\n"
        "import asyncio\n"
        "from omniq.events.bridge import loop_factory\n"
        "assert loop_factory('auto') is asyncio.new_event_loop\n"
        "assert loop_factory('uvloop') is not asyncio.new_event_loop\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], check=False, capture_output=True, timeout=60
    )
    assert done.returncode == 0, done.stderr.decode()


def test_many_threads_at_once(make_oq: Callable[..., OmniQ]) -> None:
    with make_oq() as oq:
        ids: list[str] = []
        errors: list[BaseException] = []
        lock = threading.Lock()

        def producer(n: int) -> None:
            try:
                for i in range(20):
                    task = oq.enqueue_sync(t.add, (n, i))
                    with lock:
                        ids.append(task.id)
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=producer, args=(n,)) for n in range(8)]
        with oq.worker(concurrency=8):
            for th in threads:
                th.start()
            for th in threads:
                th.join()
            results = [oq.get_result_sync(i, wait=True, timeout=WAIT) for i in ids]
        assert not errors
        assert len(ids) == 160 and all(r is not None and r.ok for r in results)


def test_inside_a_running_loop_warns_and_works(make_oq: Callable[..., OmniQ]) -> None:
    oq = make_oq()

    async def app() -> int:
        with pytest.warns(SyncInAsyncWarning):
            task = oq.enqueue_sync(t.add, (1, 2))
        with pytest.warns(SyncInAsyncWarning):
            oq.run_worker_sync(burst=True)
        r = await oq.get_result(task.id)  # the async API forwards to the sync home loop
        assert r is not None
        return int(r.value)

    try:
        assert asyncio.run(app()) == 3
    finally:
        oq.close_sync()


@pytest.mark.anyio
async def test_sync_call_on_the_home_loop_refuses_instead_of_deadlocking(oq: OmniQ) -> None:
    await oq.enqueue(t.add, (1, 1))  # home loop = this loop
    with pytest.raises(OmniQError, match="deadlock"):
        oq.enqueue_sync(t.add, (1, 1))
    # another thread may use the sync API: it is forwarded to this loop
    out: list[object] = []
    th = threading.Thread(target=lambda: out.append(oq.enqueue_sync(t.add, (2, 2))))
    th.start()
    import anyio.to_thread

    await anyio.to_thread.run_sync(th.join)  # the loop stays free to serve the call
    assert len(out) == 1


@pytest.mark.multiprocess
def test_after_fork_in_the_child(make_oq: Callable[..., OmniQ], tmp_path: Path) -> None:
    with make_oq() as oq:
        parent_task = oq.enqueue_sync(t.add, (1, 1))
        out = tmp_path / "child"
        pid = os.fork()
        if pid == 0:  # child: the portal thread is gone; OmniQ must start a new one
            code = 1
            try:
                task = oq.enqueue_sync(t.add, (5, 6))
                oq.run_worker_sync(burst=True, handle_signals=False)
                r = oq.get_result_sync(task.id)
                got = oq.get_result_sync(parent_task.id)
                out.write_text(f"{r.value if r else None} {got.value if got else None}")
                code = 0
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert out.read_text() == "11 2"
        r = oq.get_result_sync(parent_task.id)  # the parent still works
        assert r is not None and r.value == 2


def test_task_decorator(make_oq: Callable[..., OmniQ]) -> None:
    with make_oq() as oq:
        add = oq.task(max_retries=0)(t.add)
        assert add(1, 2) == 3  # still the plain function
        task = add.enqueue_sync(3, 4)
        assert task.func == "e2e_tasks:add" and task.max_retries == 0
        oq.run_worker_sync(burst=True)
        r = oq.get_result_sync(task)
        assert r is not None and r.value == 7


def test_exceptions_cross_the_boundary_with_type(make_oq: Callable[..., OmniQ]) -> None:
    from omniq.models import InvalidTaskError

    with make_oq() as oq, pytest.raises(InvalidTaskError):
        oq.enqueue_sync("not a path")
