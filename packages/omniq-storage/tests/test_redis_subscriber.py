"""The Redis backend's own pub/sub connection goes wherever the redis-py client goes:
password (ACL user), unix socket, TLS; and it keeps itself alive with PINGs.

Each case hands a task over to a worker waiting idle: the task reaches the worker only
through the subscriber (the worker's registration is stored before the enqueue).
"""

from __future__ import annotations

import shutil
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
import redis
import redis.asyncio as aioredis

from omniq.models import BackendUnavailableError, ClaimedTask, Task
from omniq.storage._backends.redis._backend import RedisBackend

pytestmark = pytest.mark.anyio
BASE = "redis://127.0.0.1:6379/0"


async def _hands_over(url: str, **options: Any) -> None:
    prefix = f"omniq-sub-{uuid.uuid4().hex[:10]}:"
    worker = RedisBackend(url, prefix=prefix, **options)
    producer = RedisBackend(url, prefix=prefix, **options)
    async with worker, producer:
        try:
            await _handover(worker, producer)
        finally:
            await worker.drop()


async def _handover(worker: RedisBackend, producer: RedisBackend) -> None:
    """``producer``'s task reaches ``worker``, waiting idle, through its subscriber."""
    assert worker.tasks is not None and producer.tasks is not None
    got: list[ClaimedTask] = []

    async def push_wait() -> None:
        await worker.tasks.wait_for_push(  # type: ignore[union-attr]
            ["other"], 10, worker_id="w2", lease=30, inbox=got.extend
        )

    async with anyio.create_task_group() as tg:
        tg.start_soon(push_wait)
        await _until_idle(producer, "other", "w2")
        t = Task(func="m:g", queue="other")
        await producer.tasks.enqueue([t])
    assert [g.task.id for g in got] == [t.id]
    assert got[0].worker_id == "w2"


async def _until_idle(backend: RedisBackend, queue: str, worker: str) -> None:
    """Deadline-poll until ``worker``'s idle registration on ``queue`` is stored."""
    end = time.monotonic() + 10
    key = f"{backend.prefix}iw:{queue}"
    while worker.encode() not in [
        m.split(b"\x1f", 1)[0] for m in await backend.redis.zrange(key, 0, -1)
    ]:
        assert time.monotonic() < end, f"{worker} never registered idle on {queue}"
        await anyio.sleep(0.01)


async def test_a_handover_reaches_only_the_workers_backend() -> None:
    """Handovers go to the channel named in the worker's registration: other backends
    (a producer, other worker processes) do not receive, let alone parse, them."""
    prefix = f"omniq-sub-{uuid.uuid4().hex[:10]}:"
    worker, producer = RedisBackend(BASE, prefix=prefix), RedisBackend(BASE, prefix=prefix)
    seen: list[bytes] = []
    notified = producer._notified
    work_seen = anyio.Event()

    def spy(raw: bytes) -> None:
        seen.append(raw)
        if raw == b"w:nobody-waits":
            work_seen.set()
        notified(raw)

    producer._notified = spy  # type: ignore[method-assign]
    async with worker, producer:
        try:
            await _handover(worker, producer)
            # A plain enqueue's notification does reach the producer (the spy works).
            assert producer.tasks is not None
            await producer.tasks.enqueue([Task(func="m:f", queue="nobody-waits")])
            with anyio.fail_after(10):
                await work_seen.wait()
        finally:
            await worker.drop()
    assert not [m for m in seen if m.startswith(b"P:")]


# -- password (an ACL user on the shared server) -------------------------------------------


@pytest.fixture
def acl_user() -> Iterator[tuple[str, str]]:
    name, password = f"omniq-sub-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    r = redis.Redis.from_url(BASE)
    r.acl_setuser(
        name, enabled=True, passwords=[f"+{password}"], keys=["*"], channels=["*"],
        commands=["+@all"],
    )  # fmt: skip
    try:
        yield name, password
    finally:
        r.acl_deluser(name)
        r.close()


async def test_password_user(acl_user: tuple[str, str]) -> None:
    name, password = acl_user
    await _hands_over(f"redis://{name}:{password}@127.0.0.1:6379/0")


async def test_wrong_password_is_a_clear_error(acl_user: tuple[str, str]) -> None:
    name, _ = acl_user
    with pytest.raises(BackendUnavailableError, match="redis"):
        async with RedisBackend(f"redis://{name}:wrong@127.0.0.1:6379/0"):
            pass


# -- unix socket and TLS (private servers) -------------------------------------------------


def _serve(tmp: Path, *args: str) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(
        ["redis-server", "--save", "", "--appendonly", "no", "--dir", str(tmp), *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield proc
    finally:
        proc.terminate()
        proc.wait(10)


def _until_up(client: redis.Redis) -> None:
    end = time.monotonic() + 20
    while True:
        try:
            client.ping()
            return
        except redis.ConnectionError:
            assert time.monotonic() < end, "private redis-server did not come up"
            time.sleep(0.05)  # waiting for an external process to listen
        finally:
            client.close()


@pytest.fixture
def unix_socket(tmp_path: Path) -> Iterator[Path]:
    sock = tmp_path / "redis.sock"
    for _ in _serve(tmp_path, "--port", "0", "--unixsocket", str(sock)):
        _until_up(redis.Redis(unix_socket_path=str(sock)))
        yield sock


async def test_unix_socket(unix_socket: Path) -> None:
    await _hands_over(f"unix://{unix_socket}?db=0")


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    openssl = shutil.which("openssl")
    assert openssl, "the TLS test needs the openssl command"
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-keyout", str(key), "-out", str(cert), "-subj", "/CN=localhost",
            "-addext", "subjectAltName=IP:127.0.0.1",
        ],
        check=True, capture_output=True,
    )  # fmt: skip
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    for _ in _serve(
        tmp_path, "--port", "0", "--bind", "127.0.0.1", "--tls-port", str(port),
        "--tls-cert-file", str(cert), "--tls-key-file", str(key),
        "--tls-ca-cert-file", str(cert), "--tls-auth-clients", "no",
    ):  # fmt: skip
        _until_up(redis.Redis(port=port, ssl=True, ssl_ca_certs=str(cert)))
        yield port, cert


async def test_tls(tls_server: tuple[int, Path]) -> None:
    port, cert = tls_server
    await _hands_over(f"rediss://127.0.0.1:{port}/0", ssl_ca_certs=str(cert))


# -- health: PINGs on a quiet connection, answered without disturbing messages ----------


@pytest.fixture
async def quiet_backend() -> AsyncIterator[tuple[RedisBackend, str]]:
    name = f"omniq-sub-{uuid.uuid4().hex[:8]}"
    be = RedisBackend(f"{BASE}?prefix={name}:", client_name=name, health_check_interval=0.2)
    async with be:
        yield be, name
        await be.drop()


async def test_quiet_subscriber_pings_and_still_delivers(
    quiet_backend: tuple[RedisBackend, str],
) -> None:
    backend, name = quiet_backend
    r = aioredis.from_url(BASE)
    try:
        end = time.monotonic() + 10
        while True:  # the subscriber's connection: subscribed, and its last command PING
            subs = [
                c for c in await r.client_list()
                if c.get("name") == name and int(c.get("sub", 0)) >= 1
            ]  # fmt: skip
            if subs and subs[0].get("cmd") == "ping":
                break
            assert time.monotonic() < end, f"the subscriber never pinged: {subs}"
            await anyio.sleep(0.05)
    finally:
        await r.aclose()
    producer = RedisBackend(BASE, prefix=backend.prefix)
    async with producer:
        await _handover(backend, producer)
