"""The multi-process worker: ``run_worker(processes=N)`` and ``omniq worker --processes N``.

Real worker processes on every store processes can share; side effects are counted in
files, processes watched through /proc, and every wait is a poll with a deadline.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import supervisor_tasks as st

from omniq.core import OmniQ
from omniq.core._supervisor import supervisor_for
from omniq.models import TaskStatus, now
from omniq.workers import PoolStats

from .conftest import BACKENDS, HERE, LANDED, ROOT

pytestmark = [pytest.mark.multiprocess, pytest.mark.slow]
WAIT = 60.0


def wait_for(cond: Callable[[], object], what: str, timeout: float = WAIT) -> None:
    deadline = now() + timeout
    while not cond():
        assert now() < deadline, f"timed out waiting for {what}"
        threading.Event().wait(0.02)  # poll interval, not synchronization


def alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def started_pids(folder: Path) -> set[int]:
    return {int(p.name.rsplit("-", 1)[1]) for p in folder.glob("started-*")}


@pytest.fixture
def sqlite_or_redis(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    spec = BACKENDS[request.param]
    url = spec.url(tmp_path)
    yield url
    if spec.cleanup is not None:
        spec.cleanup(url)


two_backends = pytest.mark.parametrize(
    "sqlite_or_redis", [b for b in ("sqlite", "redis") if b in LANDED], indirect=True
)


def test_children_drain_a_shared_queue_exactly_once(store_url: str, tmp_path: Path) -> None:
    meet_dir, out = tmp_path / "met", tmp_path / "out"
    meet_dir.mkdir()
    with OmniQ(store_url) as oq:
        oq.enqueue_many_sync([(st.meet, (str(meet_dir), 2))] * 2)
        oq.enqueue_many_sync([(st.count, (i, str(out))) for i in range(40)])
        stats = oq.run_worker_sync(processes=2, burst=True, concurrency=1)
        assert oq.counts_sync() == {("default", TaskStatus.SUCCESS): 42}
    assert stats.succeeded == 42 and stats.failed == 0
    met = {int(p.name) for p in meet_dir.iterdir()}
    assert len(met) == 2 and os.getpid() not in met  # both children ran, not this process
    ids = [int(line.split()[0]) for line in out.read_text().splitlines()]
    assert sorted(ids) == list(range(40))  # every task ran exactly once


def test_sigkilled_child_is_restarted_and_tasks_complete_once(
    store_url: str, tmp_path: Path
) -> None:
    folder = tmp_path / "gate"
    folder.mkdir()
    with OmniQ(store_url, lease_seconds=1.0) as oq:
        items = [(st.gate, (i, str(folder))) for i in range(12)]
        tasks = oq.enqueue_many_sync(items, max_retries=3)
        sup = supervisor_for(oq, {"concurrency": 2}, 2, burst=False)
        result: list[PoolStats] = []
        runner = threading.Thread(target=lambda: result.append(sup.run(handle_signals=False)))
        runner.start()
        try:
            wait_for(lambda: len(started_pids(folder)) == 2, "both children to run tasks")
            victim = min(started_pids(folder))
            os.kill(victim, signal.SIGKILL)
            wait_for(lambda: sup.restarts == 1, "the killed child to be restarted")
            wait_for(
                lambda: len(sup.pids()) == 2 and victim not in sup.pids(),
                "a new child in its place",
            )
            (folder / "go").touch()
            wait_for(
                lambda: oq.counts_sync() == {("default", TaskStatus.SUCCESS): 12},
                "every task to succeed",
            )
        finally:
            sup.request_stop()
            runner.join(WAIT)
        assert not runner.is_alive() and result
        done = sorted(int(x) for x in (folder / "done").read_text().split())
        assert done == list(range(12))  # the killed runs left nothing; each ran to the end once
        results = [oq.get_result_sync(t.id) for t in tasks]
        assert all(r is not None and r.ok for r in results)
        assert max(r.attempts for r in results if r is not None) == 2  # the killed ones reran
    assert not alive(victim)


def test_crash_loop_backs_off_and_says_so(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    url = BACKENDS["sqlite"].url(tmp_path)
    with OmniQ(url, lease_seconds=1.0) as oq:
        oq.enqueue_sync(st.crash, max_retries=20)
        sup = supervisor_for(oq, {"concurrency": 1}, 1 + 1, burst=False)
        sup.restart_delay, sup.restart_cap, sup.crash_limit = 0.01, 0.05, 3
        runner = threading.Thread(target=lambda: sup.run(handle_signals=False))
        with caplog.at_level("WARNING", logger="omniq.supervisor"):
            runner.start()
            try:
                wait_for(lambda: "CRASH LOOP" in caplog.text, "the crash-loop report")
            finally:
                sup.request_stop()
                runner.join(WAIT)
    assert not runner.is_alive()
    assert sup.restarts >= 3
    assert "was killed by SIGKILL" in caplog.text and "restarting in" in caplog.text


def cli(url: str, *args: str, grace: float = 60.0) -> subprocess.Popen[str]:
    env = dict(os.environ, OMNIQ_SHUTDOWN_GRACE=str(grace))
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), str(ROOT), env.get("PYTHONPATH", "")])
    return subprocess.Popen(
        [sys.executable, "-m", "omniq.core.cli", "worker", "--url", url, *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


class Lines(list[str]):
    """Lines of a stream as they arrive (read in a thread); ``eof`` is set at its end."""

    def __init__(self, stream: object) -> None:
        super().__init__()
        self.eof = threading.Event()
        threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream: object) -> None:
        for line in stream:  # type: ignore[attr-defined]
            self.append(line)
        self.eof.set()


def finish(proc: subprocess.Popen[str], err: Lines) -> str:
    """Wait for ``proc`` to exit and its stderr to be read to the end; its stdout."""
    proc.wait(WAIT)
    assert proc.stdout is not None and err.eof.wait(WAIT)
    return proc.stdout.read()


def start_two_gates(url: str, folder: Path) -> tuple[list[str], subprocess.Popen[str], Lines]:
    with OmniQ(url) as oq:
        ids = [t.id for t in oq.enqueue_many_sync([(st.gate, (i, str(folder))) for i in range(2)])]
    proc = cli(url, "--processes", "2", "--concurrency", "1", "--no-scheduler")
    err = Lines(proc.stderr)
    wait_for(lambda: len(started_pids(folder)) == 2, "both children to run a task")
    return ids, proc, err


@two_backends
def test_sigterm_drains_running_tasks_then_exits_0(sqlite_or_redis: str, tmp_path: Path) -> None:
    folder = tmp_path / "gate"
    folder.mkdir()
    ids, proc, err = start_two_gates(sqlite_or_redis, folder)
    children = started_pids(folder)
    proc.send_signal(signal.SIGTERM)
    wait_for(lambda: any("graceful stop" in line for line in err), "the stop to be passed on")
    (folder / "go").touch()  # the running tasks may finish now
    out = finish(proc, err)
    assert proc.returncode == 0, "".join(err)
    assert "2 succeeded" in out and "0 restarts" in out
    assert sorted((folder / "done").read_text().split()) == ["0", "1"]
    assert not any(alive(pid) for pid in children)
    with OmniQ(sqlite_or_redis) as oq:
        for tid in ids:
            r = oq.get_result_sync(tid)
            assert r is not None and r.ok and r.attempts == 1


@two_backends
def test_second_signal_forces_the_stop(sqlite_or_redis: str, tmp_path: Path) -> None:
    folder = tmp_path / "gate"
    folder.mkdir()
    ids, proc, err = start_two_gates(sqlite_or_redis, folder)
    children = started_pids(folder)
    proc.send_signal(signal.SIGTERM)
    wait_for(lambda: any("graceful stop" in line for line in err), "the graceful stop")
    t0 = now()
    proc.send_signal(signal.SIGINT)
    finish(proc, err)
    assert now() - t0 < 15.0  # well inside the 60 s grace a graceful stop would give
    assert any("forced stop" in line for line in err)
    assert not any(alive(pid) for pid in children)
    assert not (folder / "done").exists()
    with OmniQ(sqlite_or_redis) as oq:
        for tid in ids:
            task = oq.get_task_sync(tid)
            assert task is not None and task.status is not TaskStatus.SUCCESS


def test_script_body_runs_once(tmp_path: Path) -> None:
    url = BACKENDS["sqlite"].url(tmp_path)
    script = tmp_path / "script.py"
    body, out = tmp_path / "body", tmp_path / "out"
    script.write_text(
        "import supervisor_tasks as st\n"
        "from omniq.core import OmniQ\n"
        f"open({str(body)!r}, 'a').write('ran\\n')  # no __main__ guard on purpose\n"
        f"oq = OmniQ({url!r})\n"
        f"oq.enqueue_many_sync([(st.count, (i, {str(out)!r})) for i in range(10)])\n"
        "print(oq.run_worker_sync(processes=2, burst=True).succeeded)\n"
        "oq.close_sync()\n"
    )
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), str(ROOT), env.get("PYTHONPATH", "")])
    done = subprocess.run(
        [sys.executable, str(script)],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=WAIT,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["10"]
    assert body.read_text() == "ran\n"
    lines = out.read_text().splitlines()
    assert sorted(int(line.split()[0]) for line in lines) == list(range(10))


@pytest.mark.anyio
async def test_async_run_worker_with_processes(tmp_path: Path) -> None:
    url = BACKENDS["sqlite"].url(tmp_path)
    out = tmp_path / "out"
    async with OmniQ(url) as oq:
        await oq.enqueue_many([(st.count, (i, str(out))) for i in range(20)])
        stats = await oq.run_worker(processes=2, burst=True)
    assert stats.succeeded == 20
    assert sorted(int(x.split()[0]) for x in out.read_text().splitlines()) == list(range(20))


@pytest.mark.anyio
async def test_cancelling_async_run_worker_stops_the_children(tmp_path: Path) -> None:
    import anyio.to_thread

    url = BACKENDS["sqlite"].url(tmp_path)
    folder = tmp_path / "gate"
    folder.mkdir()
    async with OmniQ(url) as oq:
        await oq.enqueue_many([(st.gate, (i, str(folder))) for i in range(2)])
        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: oq.run_worker(processes=2, concurrency=1))
            await anyio.to_thread.run_sync(
                wait_for, lambda: len(started_pids(folder)) == 2, "both children to run a task"
            )
            children = started_pids(folder)
            tg.cancel_scope.cancel()  # graceful: running tasks get the grace period
            (folder / "go").touch()
        assert not any(alive(pid) for pid in children)
        assert sorted((folder / "done").read_text().split()) == ["0", "1"]


def test_cli_burst_with_app_loads_the_app_in_each_child(tmp_path: Path) -> None:
    url = BACKENDS["sqlite"].url(tmp_path)
    loads, out = tmp_path / "loads", tmp_path / "out"
    (tmp_path / "sup_app.py").write_text(
        "import os\n"
        "from omniq.core import OmniQ\n"
        f"open({str(loads)!r}, 'a').write(f'{{os.getpid()}}\\n')\n"
        f"oq = OmniQ({url!r})\n"
    )
    with OmniQ(url) as oq:
        oq.enqueue_many_sync([(st.count, (i, str(out))) for i in range(10)])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), str(ROOT), env.get("PYTHONPATH", "")])
    command = ["worker", "--app", "sup_app:oq", "--processes", "2", "--burst"]
    done = subprocess.run(
        [sys.executable, "-m", "omniq.core.cli", *command],
        check=False,
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=WAIT,
    )
    assert done.returncode == 0, done.stderr
    assert "10 succeeded" in done.stdout and "processes=2" in done.stdout
    assert len(set(loads.read_text().split())) == 3  # the command, then each child once
    assert sorted(int(x.split()[0]) for x in out.read_text().splitlines()) == list(range(10))


@pytest.mark.parametrize("processes", ["1", "2"])
def test_omniq_worker_runs_gevent_tasks_in_patched_processes(
    tmp_path: Path, processes: str
) -> None:
    """``omniq worker -w gevent`` (one process, or under the supervisor) patches before
    anyio and the drivers load, so it starts, runs its tasks in patched processes and
    stays quiet."""
    url = BACKENDS["sqlite"].url(tmp_path)
    with OmniQ(url) as oq:
        tasks = [oq.enqueue_sync(st.socket_patched) for _ in range(4)]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), str(ROOT), env.get("PYTHONPATH", "")])
    command = ["worker", "--url", url, "-w", "gevent", "--processes", processes, "--burst"]
    done = subprocess.run(
        [str(Path(sys.executable).parent / "omniq"), *command],
        check=False,
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=WAIT,
    )
    assert done.returncode == 0, done.stderr
    assert "4 succeeded" in done.stdout, done.stdout + done.stderr
    assert "Traceback" not in done.stderr and "Warning" not in done.stderr, done.stderr
    with OmniQ(url) as oq:
        results = [oq.get_result_sync(t.id) for t in tasks]
    assert [r.value if r is not None else None for r in results] == [True] * 4
