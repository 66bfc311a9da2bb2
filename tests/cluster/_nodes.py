"""Private multi-node engines for the cluster tests, each node a process on a fixed
port in 14000-14999 with its data in a temporary directory.

Ports are fixed (not "any free port") so that a killed node restarts where its peers
and the clients expect it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

__all__ = [
    "NatsCluster",
    "NatsNode",
    "PgBouncer",
    "PgNode",
    "PgPair",
    "RedisCluster",
    "RedisSentinelGroup",
    "port_open",
    "wait_port",
]


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def free_port() -> int:
    """A TCP port nothing listens on now (a server left over by an interrupted run keeps
    its port; a fixed one would make the next run fail)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, *, up: bool = True, deadline: float = 30.0) -> None:
    """Poll until ``port`` accepts connections (or refuses them, ``up=False``)."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if port_open(port) == up:
            return
        time.sleep(0.05)  # an external process binding its port offers nothing to wait on
    raise AssertionError(f"port {port} did not become {'reachable' if up else 'free'}")


class NatsNode:
    """One nats-server of a JetStream cluster."""

    def __init__(self, name: str, port: int, route_port: int, routes: list[int], root: Path):
        self.name, self.port, self.route_port, self.routes = name, port, route_port, routes
        self.dir = root / name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        conf = self.dir / "nats.conf"
        routes = ", ".join(f"nats-route://127.0.0.1:{p}" for p in self.routes)
        conf.write_text(
            f"server_name: {self.name}\n"
            f"listen: 127.0.0.1:{self.port}\n"
            f'jetstream {{ store_dir: "{self.dir / "js"}" }}\n'
            f"cluster {{ name: omniq-test, listen: 127.0.0.1:{self.route_port}, "
            f"routes: [{routes}] }}\n"
        )
        log = open(self.dir / "log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            ["nats-server", "-c", str(conf)], stdout=log, stderr=subprocess.STDOUT
        )
        log.close()
        wait_port(self.port)

    def kill(self) -> None:
        """SIGKILL: the node dies without a goodbye, as a crashed host would."""
        if self.proc is not None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
            self.proc = None
            wait_port(self.port, up=False)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
            self.proc = None


class NatsCluster:
    """``size`` JetStream nodes on client ports ``base``, ``base+1``, ... and route
    ports ``base+100``, ... , all routed to each other."""

    def __init__(self, base: int = 14222, size: int = 3) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="omniq-nats-cluster-"))
        routes = [base + 100 + i for i in range(size)]
        self.nodes = [
            NatsNode(f"n{i}", base + i, routes[i], [r for r in routes if r != routes[i]], self.root)
            for i in range(size)
        ]

    def url(self, **query: object) -> str:
        hosts = ",".join(f"127.0.0.1:{n.port}" for n in self.nodes)
        q = "&".join(f"{k}={v}" for k, v in query.items())
        return f"nats://{hosts}" + (f"?{q}" if q else "")

    def start(self) -> NatsCluster:
        for n in self.nodes:
            if port_open(n.port):
                raise AssertionError(f"port {n.port} is taken: another cluster test running?")
        for n in self.nodes:
            n.start()
        return self

    def close(self) -> None:
        for n in self.nodes:
            with contextlib.suppress(Exception):
                n.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def logs(self) -> str:
        out = []
        for n in self.nodes:
            with contextlib.suppress(OSError):
                out.append(f"--- {n.name}\n{(n.dir / 'log').read_text(errors='replace')[-2000:]}")
        return "\n".join(out)


_ = os


PG_BIN = Path("/usr/lib/postgresql/15/bin")


def _as_postgres(*cmd: str) -> None:
    subprocess.run(
        ["runuser", "-u", "postgres", "--", *cmd],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd="/tmp",
    )


class PgNode:
    """One PostgreSQL 15 server (trust auth, replication allowed from 127.0.0.1)."""

    def __init__(self, root: Path, name: str, port: int) -> None:
        self.root, self.name, self.port = root, name, port
        self.data = root / name

    def init_primary(self, *, sync_standby: str | None = None) -> None:
        _as_postgres(str(PG_BIN / "initdb"), "-D", str(self.data), "-A", "trust",
                     "-U", "postgres", "--no-sync")  # fmt: skip
        with open(self.data / "postgresql.conf", "a") as f:
            f.write("wal_level = replica\nmax_wal_senders = 5\nhot_standby = on\n")
            if sync_standby:  # commits wait for the standby's flush: failover loses none
                f.write(f"synchronous_standby_names = '{sync_standby}'\n")
        with open(self.data / "pg_hba.conf", "a") as f:
            f.write("host replication all 127.0.0.1/32 trust\n")

    def init_standby(self, primary: PgNode) -> None:
        _as_postgres(str(PG_BIN / "pg_basebackup"), "-h", "127.0.0.1", "-p", str(primary.port),
                     "-U", "postgres", "-D", str(self.data), "-R", "-X", "stream")  # fmt: skip
        with open(self.data / "postgresql.auto.conf", "a") as f:
            # the name the primary's synchronous_standby_names lists
            f.write(
                f"primary_conninfo = 'host=127.0.0.1 port={primary.port} user=postgres "
                f"application_name={self.name}'\n"
            )
        # a standby must not itself wait for a synchronous standby once promoted
        with open(self.data / "postgresql.conf", "a") as f:
            f.write("synchronous_standby_names = ''\n")

    def start(self) -> None:
        opts = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1"
        _as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-o", opts, "-w",
                     "-l", str(self.root / f"{self.name}.log"), "start")  # fmt: skip
        wait_port(self.port)

    def kill(self) -> None:
        """Immediate shutdown: no checkpoint, clients cut off, as a crash would."""
        _as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w",
                     "stop")  # fmt: skip
        wait_port(self.port, up=False)

    def promote(self) -> None:
        _as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-w", "promote")

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self.kill()


class PgPair:
    """A primary and a streaming standby (synchronous by default) on two ports."""

    def __init__(self, primary_port: int = 14432, standby_port: int = 14433, *,
                 sync: bool = True) -> None:  # fmt: skip
        self.root = Path(tempfile.mkdtemp(prefix="omniq-pg-pair-"))
        shutil.chown(self.root, "postgres", "postgres")
        self.primary = PgNode(self.root, "primary", primary_port)
        self.standby = PgNode(self.root, "standby", standby_port)
        self.sync = sync

    def start(self) -> PgPair:
        for port in (self.primary.port, self.standby.port):
            if port_open(port):
                raise AssertionError(f"port {port} is taken: another cluster test running?")
        self.primary.init_primary(sync_standby="standby" if self.sync else None)
        self.primary.start()
        self.standby.init_standby(self.primary)
        self.standby.start()
        return self

    def url(self, **query: object) -> str:
        hosts = f"127.0.0.1:{self.primary.port},127.0.0.1:{self.standby.port}"
        q = "&".join(f"{k}={v}" for k, v in {"target_session_attrs": "read-write", **query}.items())
        return f"postgresql://postgres@{hosts}/postgres?{q}"

    def close(self) -> None:
        self.standby.stop()
        self.primary.stop()
        shutil.rmtree(self.root, ignore_errors=True)


class PgBouncer:
    """A pgbouncer in transaction pooling mode in front of one PostgreSQL server;
    database ``omniq`` sets ``search_path`` to ``schema`` on each server connection."""

    def __init__(self, port: int, server_port: int, schema: str) -> None:
        self.port = port
        self.dir = Path(tempfile.mkdtemp(prefix="omniq-pgbouncer-"))
        shutil.chown(self.dir, "postgres", "postgres")
        ini = self.dir / "pgbouncer.ini"
        ini.write_text(
            "[databases]\n"
            f"omniq = host=127.0.0.1 port={server_port} dbname=postgres "
            f"connect_query='SET search_path TO {schema}'\n"
            "[pgbouncer]\n"
            f"listen_addr = 127.0.0.1\nlisten_port = {port}\n"
            f"unix_socket_dir = {self.dir}\n"
            "auth_type = trust\n"
            f"auth_file = {self.dir / 'users.txt'}\n"
            "pool_mode = transaction\n"
            "default_pool_size = 4\nmax_client_conn = 200\n"
            f"logfile = {self.dir / 'pgbouncer.log'}\n"
            "ignore_startup_parameters = extra_float_digits\n"
        )
        (self.dir / "users.txt").write_text('"postgres" ""\n')
        for f in self.dir.iterdir():
            shutil.chown(f, "postgres", "postgres")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> PgBouncer:
        if port_open(self.port):
            raise AssertionError(f"port {self.port} is taken: another pgbouncer test running?")
        self.proc = subprocess.Popen(
            ["runuser", "-u", "postgres", "--", pgbouncer_bin(), str(self.dir / "pgbouncer.ini")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd="/tmp",
        )
        wait_port(self.port)
        return self

    def url(self, **query: object) -> str:
        q = "&".join(f"{k}={v}" for k, v in {"pgbouncer": 1, **query}.items())
        return f"postgresql://postgres@127.0.0.1:{self.port}/omniq?{q}"

    def close(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)


def pgbouncer_bin() -> str:
    """The pgbouncer executable (Debian installs it in /usr/sbin)."""
    for d in ("/usr/sbin", "/usr/bin", "/sbin"):
        if os.access(f"{d}/pgbouncer", os.X_OK):
            return f"{d}/pgbouncer"
    found = shutil.which("pgbouncer")
    if found is None:
        raise AssertionError("pgbouncer is not installed: run scripts/services (apt-get)")
    return found


class _Proc:
    """A server process started from an argv, killed by SIGKILL or stopped by SIGTERM."""

    def __init__(self, port: int, argv: list[str], log: Path) -> None:
        self.port, self.argv, self.log = port, argv, log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        if port_open(self.port):
            raise AssertionError(f"port {self.port} is taken: another cluster test running?")
        out = open(self.log, "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(self.argv, stdout=out, stderr=subprocess.STDOUT)
        out.close()
        wait_port(self.port)

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(10)
            self.proc = None
            wait_port(self.port, up=False)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
            self.proc = None


def _redis_argv(port: int, d: Path, *extra: str) -> list[str]:
    d.mkdir(parents=True, exist_ok=True)
    return ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", str(d),
            "--save", "", "--appendonly", "no", *extra]  # fmt: skip


class RedisCluster:
    """``size`` Redis Cluster masters (no replicas) on ``base``...; bus ports ``base+10``..."""

    def __init__(self, base: int = 14700, size: int = 3) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="omniq-redis-cluster-"))
        self.ports = [base + i for i in range(size)]
        self.nodes = [
            _Proc(p, _redis_argv(p, self.root / str(p), "--cluster-enabled", "yes",
                                 "--cluster-port", str(p + 10),
                                 "--cluster-config-file", str(self.root / str(p) / "nodes.conf")),
                  self.root / f"{p}.log")
            for p in self.ports
        ]  # fmt: skip

    def start(self) -> RedisCluster:
        for n in self.nodes:
            n.start()
        subprocess.run(
            ["redis-cli", "--cluster", "create", *(f"127.0.0.1:{p}" for p in self.ports),
             "--cluster-replicas", "0", "--cluster-yes"],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        end = time.monotonic() + 30
        while not all(
            self.cli(p, "CLUSTER", "INFO").startswith("cluster_state:ok") for p in self.ports
        ):
            assert time.monotonic() < end, "redis cluster did not reach cluster_state:ok"
            time.sleep(0.1)  # the nodes gossip their way to a consistent view
        return self

    def url(self, **query: object) -> str:
        q = "&".join(f"{k}={v}" for k, v in query.items())
        return (
            "redis+cluster://"
            + ",".join(f"127.0.0.1:{p}" for p in self.ports[:2])
            + (f"?{q}" if q else "")
        )

    @staticmethod
    def cli(port: int, *args: str) -> str:
        return subprocess.run(
            ["redis-cli", "-p", str(port), *args], check=True, capture_output=True, text=True
        ).stdout.strip()

    def close(self) -> None:
        for n in self.nodes:
            with contextlib.suppress(Exception):
                n.stop()
        shutil.rmtree(self.root, ignore_errors=True)


class RedisSentinelGroup:
    """A primary, one replica, and three sentinels (quorum 2) watching ``service``."""

    def __init__(self, primary: int = 14720, replica: int = 14721, sentinels: int = 14726,
                 service: str = "omniq", extra: tuple[str, ...] = ()) -> None:  # fmt: skip
        self.root = Path(tempfile.mkdtemp(prefix="omniq-redis-sentinel-"))
        self.service = service
        self.primary = _Proc(primary, _redis_argv(primary, self.root / "p", *extra),
                             self.root / "primary.log")  # fmt: skip
        follow = ("--replicaof", "127.0.0.1", str(primary))
        self.replica = _Proc(replica, _redis_argv(replica, self.root / "r", *follow, *extra),
                             self.root / "replica.log")  # fmt: skip
        self.sentinels: list[_Proc] = []
        for i in range(3):
            port = sentinels + i
            conf = self.root / f"sentinel-{port}.conf"
            conf.write_text(
                f"port {port}\nbind 127.0.0.1\ndir {self.root}\n"
                f"sentinel monitor {service} 127.0.0.1 {primary} 2\n"
                f"sentinel down-after-milliseconds {service} 1000\n"
                f"sentinel failover-timeout {service} 5000\n"
                f"sentinel parallel-syncs {service} 1\n"
            )
            self.sentinels.append(
                _Proc(port, ["redis-server", str(conf), "--sentinel"], self.root / f"s{port}.log")
            )

    def start(self) -> RedisSentinelGroup:
        self.primary.start()
        self.replica.start()
        end = time.monotonic() + 30
        while "master_link_status:up" not in RedisCluster.cli(
            self.replica.port, "INFO", "replication"
        ):
            assert time.monotonic() < end, "the replica did not sync"
            time.sleep(0.1)  # waiting for an external process
        for s in self.sentinels:
            s.start()
        return self

    def url(self, **query: object) -> str:
        q = "&".join(f"{k}={v}" for k, v in query.items())
        seeds = ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)
        return f"redis+sentinel://{seeds}/{self.service}" + (f"?{q}" if q else "")

    def master_port(self) -> int:
        out = RedisCluster.cli(self.sentinels[0].port, "SENTINEL", "get-master-addr-by-name",
                               self.service)  # fmt: skip
        return int(out.split()[-1])

    def stale_sentinel(self, port: int, names: int) -> _Proc:
        """A sentinel (not started) that watches ``service`` at ``127.0.0.1:names``, as
        one that has not yet learnt of a failover does: it names that address, alone."""
        conf = self.root / f"sentinel-{port}.conf"
        conf.write_text(
            f"port {port}\nbind 127.0.0.1\ndir {self.root}\n"
            f"sentinel monitor {self.service} 127.0.0.1 {names} 2\n"
            f"sentinel down-after-milliseconds {self.service} 1000\n"
        )
        return _Proc(port, ["redis-server", str(conf), "--sentinel"], self.root / f"s{port}.log")

    def close(self) -> None:
        for p in (*self.sentinels, self.replica, self.primary):
            with contextlib.suppress(Exception):
                p.stop()
        shutil.rmtree(self.root, ignore_errors=True)
