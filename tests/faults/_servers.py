"""Private engine instances and shared helpers for the fault tests.

The shared servers on 127.0.0.1:5432/6379/4222 are used by everyone, so a test that
restarts a server starts its own instance on a free port in a temporary directory and
stops it afterwards.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import TypeVar

import anyio

from omniq.models import BackendUnavailableError, Task
from omniq.storage import Backend

T = TypeVar("T")

__all__ = [
    "PrivateNats",
    "PrivatePostgres",
    "PrivateRedis",
    "drop",
    "fault_task",
    "free_port",
    "retrying",
    "running",
    "wait_port",
]

PG_BIN = Path("/usr/lib/postgresql/15/bin")


async def retrying(fn: Callable[[], Awaitable[T]], deadline: float = 30.0) -> T:
    """Call ``fn`` until it stops raising BackendUnavailableError (server coming back)."""
    end = time.monotonic() + deadline
    while True:
        try:
            return await fn()
        except BackendUnavailableError:
            if time.monotonic() > end:
                raise
            await anyio.sleep(0.05)


def fault_task(queue: str = "default") -> Task:
    return Task(func="tests.faults:noop", queue=queue)


async def drop(backend: Backend) -> None:
    await backend.drop()  # type: ignore[attr-defined]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, *, up: bool = True, deadline: float = 20.0) -> None:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        with socket.socket() as s:
            ok = s.connect_ex(("127.0.0.1", port)) == 0
        if ok == up:
            return
        time.sleep(0.05)  # waiting for an external process to bind/unbind its port
    raise AssertionError(f"port {port} did not become {'reachable' if up else 'free'}")


class _ProcessServer:
    """A server process on a free port with its data in a temporary directory."""

    prefix = "omniq-server-"

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix=self.prefix))
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        raise NotImplementedError

    def start(self) -> None:
        self.proc = subprocess.Popen(
            self.command(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        wait_port(self.port)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None
            wait_port(self.port, up=False)

    def restart(self) -> None:
        self.stop()
        self.start()

    def cleanup(self) -> None:
        with contextlib.suppress(Exception):
            self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class PrivateRedis(_ProcessServer):
    """A redis-server with AOF (fsync always) so that acknowledged writes survive."""

    prefix = "omniq-redis-"

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def command(self) -> list[str]:
        return [
            "redis-server",
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.dir),
            "--save", "",
            "--appendonly", "yes",
            "--appendfsync", "always",
        ]  # fmt: skip


class PrivateNats(_ProcessServer):
    """A nats-server with JetStream on a free port, storing in a temporary directory."""

    prefix = "omniq-nats-"
    jetstream = True
    """Start the server with JetStream (``-js``); without it every API request finds
    no responders, as while a cluster has no JetStream leader."""

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        js = ["-js"] if self.jetstream else []
        return ["nats-server", *js, "-a", "127.0.0.1", "-p", str(self.port), "-sd", str(self.dir)]


class PrivatePostgres:
    """A throwaway cluster (initdb as the postgres user, trust auth) on a free port."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="omniq-pg-"))
        self.data = self.dir / "data"
        self.port = free_port()
        shutil.chown(self.dir, "postgres", "postgres")
        self._pg(
            str(PG_BIN / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres",
            "--no-sync",
        )  # fmt: skip

    @staticmethod
    def _pg(*cmd: str) -> None:
        subprocess.run(
            ["runuser", "-u", "postgres", "--", *cmd],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd="/tmp",
        )

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        opts = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=on"
        self._pg(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-o", opts, "-w", "-l",
                 str(self.dir / "log"), "start")  # fmt: skip
        wait_port(self.port)

    def stop(self) -> None:
        self._pg(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")
        wait_port(self.port, up=False)

    def restart(self) -> None:
        self.stop()
        self.start()

    def cleanup(self) -> None:
        with contextlib.suppress(Exception):
            self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


@contextlib.contextmanager
def running(server: _ProcessServer | PrivatePostgres) -> Iterator[str]:
    try:
        server.start()
        yield server.url
    finally:
        server.cleanup()


_ = os  # re-exported for helpers that need the environment
