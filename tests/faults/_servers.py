"""Private engine instances for fault tests.

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
from collections.abc import Iterator
from pathlib import Path

__all__ = ["PrivatePostgres", "PrivateRedis", "free_port", "wait_port"]

PG_BIN = Path("/usr/lib/postgresql/15/bin")


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


class PrivateRedis:
    """A redis-server with AOF (fsync always) so that acknowledged writes survive."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="omniq-redis-"))
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--dir", str(self.dir),
                "--save", "",
                "--appendonly", "yes",
                "--appendfsync", "always",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
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
def running(server: PrivateRedis | PrivatePostgres) -> Iterator[str]:
    try:
        server.start()
        yield server.url
    finally:
        server.cleanup()


_ = os  # re-exported for helpers that need the environment
