"""A worker started before its store: ``omniq worker`` keeps trying to open the store
for ``--store-wait`` seconds, telling each failure on stderr, and works once the server
is up; past the wait (or with ``--store-wait 0`` at once) it exits 1 with the error.
``OmniQ.open(wait=...)``, which it is built on, does the same in a program, logging
each failed try."""

from __future__ import annotations

import functools
import os
import signal
import sys
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from anyio.abc import Process

from omniq.core import OmniQ
from omniq.models import BackendUnavailableError, ConfigError, TaskStatus
from omniq.storage.testing.helpers import poll_until

from ._servers import PrivateNats, PrivatePostgres, PrivateRedis, free_port

pytestmark = pytest.mark.anyio
SCRIPT = str(Path(sys.executable).parent / "omniq")
RETRYING = "trying again in"


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("OMNIQ_")}


@pytest.fixture
def server(request: pytest.FixtureRequest) -> Iterator[Any]:
    made = {"redis": PrivateRedis, "postgres": PrivatePostgres, "nats": PrivateNats}
    srv = made[request.param]()
    try:
        yield srv
    finally:
        srv.cleanup()


async def _spawn(url: str, queue: str, wait: str, out: Path, err: Path) -> Process:
    argv = [SCRIPT, "worker", "-u", url, "-q", queue, "--no-scheduler", "--store-wait", wait]
    with out.open("w") as o, err.open("w") as e:
        return await anyio.open_process(argv, env=_env(), stdout=o, stderr=e, cwd="/tmp")


async def _tries(err: Path) -> int:
    return (await anyio.Path(err).read_text()).count(RETRYING)


@pytest.mark.parametrize("server", ["redis", "postgres", "nats"], indirect=True)
async def test_a_worker_started_before_its_store_waits_for_it_then_works(
    server: Any, tmp_path: Path
) -> None:
    queue = f"wait-{uuid.uuid4().hex[:8]}"
    out, err = tmp_path / "stdout", tmp_path / "stderr"
    proc = await _spawn(server.url, queue, "120", out, err)
    try:
        # Two failed tries told: the worker is waiting, not gone.
        await poll_until(lambda: _tries(err), lambda n: n >= 2, deadline=60.0)
        assert proc.returncode is None, err.read_text()
        await anyio.to_thread.run_sync(server.start)
        async with OmniQ(server.url) as oq:
            task = await oq.enqueue("operator:add", (2, 3), queue=queue)
            got = await oq.get_result(task, wait=True, timeout=90)
        assert got is not None and got.status is TaskStatus.SUCCESS and got.value == 5
    finally:
        proc.send_signal(signal.SIGTERM)
        with anyio.fail_after(60):
            await proc.wait()
    text = err.read_text()
    assert proc.returncode == 0, text
    shown = out.read_text()
    assert "omniq worker on" in shown and "done: 1 succeeded" in shown, shown
    line = next(ln for ln in text.splitlines() if RETRYING in ln)
    assert line.startswith("omniq worker: ") and "unreachable" in line, line


async def test_past_its_store_wait_the_worker_exits_with_the_error() -> None:
    url = f"redis://:s3cret-wait@127.0.0.1:{free_port()}/0"  # nothing listens there
    run = await anyio.run_process(
        [SCRIPT, "worker", "-u", url, "--store-wait", "8"], env=_env(), check=False
    )
    text = run.stderr.decode()
    assert run.returncode == 1, text
    tries = [ln for ln in text.splitlines() if RETRYING in ln]
    assert tries and all(ln.startswith("omniq worker: ") for ln in tries), text
    assert text.rstrip().splitlines()[-1].startswith("omniq: error: redis unreachable"), text
    assert "s3cret-wait" not in text and ":***@" in text

    at_once = await anyio.run_process(
        [SCRIPT, "worker", "-u", url, "--store-wait", "0"], env=_env(), check=False
    )
    assert at_once.returncode == 1 and b"unreachable" in at_once.stderr
    assert RETRYING.encode() not in at_once.stderr


async def test_a_negative_store_wait_is_a_usage_error() -> None:
    bad = await anyio.run_process(
        [SCRIPT, "worker", "-u", "memory://", "--store-wait", "-1"], env=_env(), check=False
    )
    assert bad.returncode == 2 and b"--store-wait" in bad.stderr, bad.stderr


async def test_open_with_a_wait_connects_once_the_server_is_up(
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = PrivateRedis()
    try:
        oq = OmniQ(server.url)
        with caplog.at_level("WARNING", logger="omniq.core"):
            async with anyio.create_task_group() as tg:
                tg.start_soon(functools.partial(oq.open, wait=60.0))
                tries = await poll_until(_warnings(caplog), lambda n: n >= 2, deadline=30.0)
                await anyio.to_thread.run_sync(server.start)
        assert tries >= 2
        try:
            task = await oq.enqueue("operator:add", (1, 2))
            assert (await oq.get_task(task.id)) is not None
        finally:
            await oq.close()
    finally:
        server.cleanup()


def _warnings(caplog: pytest.LogCaptureFixture) -> Callable[[], Awaitable[int]]:
    async def count() -> int:
        return sum(RETRYING in r.getMessage() for r in caplog.records)

    return count


async def test_open_past_its_wait_raises_the_last_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    oq = OmniQ(f"redis://127.0.0.1:{free_port()}/0")
    with (
        caplog.at_level("WARNING", logger="omniq.core"),
        pytest.raises(BackendUnavailableError, match="unreachable"),
    ):
        await oq.open(wait=8.0)
    assert any(RETRYING in r.getMessage() for r in caplog.records)
    with pytest.raises(ConfigError, match="wait"):
        await oq.open(wait=-1.0)
    await oq.close()
