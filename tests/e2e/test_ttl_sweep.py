"""TTL expiry of tasks nobody claims: a running worker of the store expires them
whatever queues it serves, so does a running scheduler and the ``omniq scheduler``
command; each expired task gets its ``expired`` result and its ``on_failure``
follow-up runs with that result."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import anyio
import e2e_tasks as t
import msgspec
import pytest

from omniq.core import OmniQ
from omniq.models import Task, TaskStatus, now

pytestmark = pytest.mark.anyio

WAIT = 20.0
HERE = Path(__file__).resolve().parent


async def _enqueue_doomed(oq: OmniQ, log: str) -> tuple[Task, Task]:
    """A task in a queue no worker serves whose TTL has passed, with an ``on_failure``
    follow-up in the default queue."""
    on_fail = oq.build(t.record_failure, (log, "on-failure"))
    built = oq.build(t.add, (1, 2), queue="nobody-serves-this", ttl=60, on_failure=on_fail)
    [doomed] = await oq.enqueue_many([msgspec.structs.replace(built, expires_at=now() - 1.0)])
    return doomed, on_fail


async def _check_expired(oq: OmniQ, doomed: Task) -> None:
    r = await oq.get_result(doomed.id, wait=True, timeout=WAIT)
    assert r is not None and r.status is TaskStatus.EXPIRED
    assert r.error is not None and r.error.type.endswith("TaskExpiredError")
    got = await oq.get_task(doomed.id)
    assert got is not None and got.status is TaskStatus.EXPIRED


async def test_a_worker_of_other_queues_expires_unclaimed_tasks(oq: OmniQ, tmp_path: Path) -> None:
    doomed, on_fail = await _enqueue_doomed(oq, str(tmp_path / "log"))
    async with oq.worker(queues=["default"]):
        await _check_expired(oq, doomed)
        cb = await oq.get_result(on_fail.id, wait=True, timeout=WAIT)
    assert cb is not None and cb.status is TaskStatus.SUCCESS
    assert cb.value == "on-failure expired"  # it received the expired task's result


async def test_a_running_scheduler_expires_unclaimed_tasks(oq: OmniQ, tmp_path: Path) -> None:
    doomed, _ = await _enqueue_doomed(oq, str(tmp_path / "log"))
    async with oq.scheduler():
        await _check_expired(oq, doomed)


@pytest.mark.multiprocess
async def test_the_scheduler_command_expires_unclaimed_tasks(
    oq: OmniQ, store_url: str, tmp_path: Path
) -> None:
    doomed, _ = await _enqueue_doomed(oq, str(tmp_path / "log"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMNIQ_")}
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), env.get("PYTHONPATH", "")])
    err = tmp_path / "stderr"
    with err.open("wb") as sink:
        proc = await anyio.open_process(
            [sys.executable, "-P", "-m", "omniq.core.cli", "scheduler", "--url", store_url],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=sink,
        )
        async with proc:
            try:
                await _check_expired(oq, doomed)
            finally:
                proc.send_signal(signal.SIGTERM)
                with anyio.fail_after(30):
                    await proc.wait()
    assert proc.returncode == 0, err.read_text()[-2000:]
