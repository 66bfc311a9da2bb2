"""Engine, workers, schedulers and clients on separate hosts: network namespaces on a
bridge (``_net``), with partitions (iptables) and latency (``tc netem``) between them.

- a worker host partitioned from the engine past its lease: its tasks run on another
  host, its late completions are refused by the lease fence, nothing is lost;
- 5 ms +- 2 ms on every host's link: throughput and W2 latency, with and without;
- schedulers on three hosts, one partitioned: each due run enqueued once.

The engine is Redis (its server inside the engine's namespace).
"""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _net import Net
from chaos_fleet import record, wait_until

pytestmark = [pytest.mark.slow]

HOSTS = ["engine", "ctl", "h1", "h2", "h3"]
PORT = 14379
LEASE = 2.0

_why = Net.available()
if _why is not None:
    pytestmark.append(pytest.mark.skip(reason=f"network namespaces unavailable: {_why}"))


class Hosts:
    """The namespaces, the engine in one of them, and the processes started in them."""

    def __init__(self, tmp: Path, delay: tuple[float, float] | None = None) -> None:
        self.tmp = tmp
        self.net = Net(HOSTS).up()
        self.procs: list[subprocess.Popen[bytes]] = []
        self.url = f"redis://{self.net.ip['engine']}:{PORT}/0?prefix=netns:"
        self.latency = "none"
        if delay is not None:
            if all(self.net.delay(host, *delay) for host in HOSTS):
                self.latency = "netem on every host's link"
            else:  # no netem in this kernel: a delaying relay in front of the engine
                ip = self.net.ip["engine"]
                self.spawn("engine", "relay", self.net.python(
                    "engine", "delay_relay.py", ip, str(PORT + 1), ip, str(PORT),
                    str(delay[0]), str(delay[1])))  # fmt: skip
                wait_until(lambda: "relay ready" in self.log("relay"), 20, "the relay")
                self.url = f"redis://{ip}:{PORT + 1}/0?prefix=netns:"
                self.latency = "relay in front of the engine, each direction"
        # protected mode off: the clients are on other hosts (of this bridge only)
        server = ["redis-server", "--port", str(PORT), "--bind", self.net.ip["engine"],
                  "--save", "", "--appendonly", "no", "--protected-mode", "no",
                  "--dir", str(tmp)]  # fmt: skip
        self.engine = self.spawn("engine", "redis", self.net.argv("engine", *server))
        wait_until(lambda: "Ready to accept" in self.log("redis"), 20, "redis in the namespace")

    def log(self, name: str) -> str:
        p = self.tmp / f"{name}.log"
        return p.read_text(errors="replace") if p.exists() else ""

    def spawn(self, host: str, name: str, argv: list[str]) -> subprocess.Popen[bytes]:
        out = open(self.tmp / f"{name}.log", "ab")  # noqa: SIM115
        proc = subprocess.Popen(argv, env=Net.env(), stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)  # fmt: skip
        out.close()
        self.procs.append(proc)
        return proc

    def worker(self, host: str, cfg: dict[str, Any]) -> subprocess.Popen[bytes]:
        name = f"worker-{host}"
        p = self.spawn(
            host, name, self.net.python(host, "../chaos/chaos_worker.py", json.dumps(cfg))
        )
        wait_until(lambda: "worker ready" in self.log(name), 30, f"the worker on {host}")
        return p

    def drive(self, cmd: str, cfg: dict[str, Any], timeout: float = 120) -> dict[str, Any]:
        """Run the client ``cmd`` on the ctl host; its JSON answer."""
        out = subprocess.run(
            self.net.python("ctl", "netns_driver.py", cmd, json.dumps(cfg)),
            env=Net.env(), capture_output=True, text=True, timeout=timeout, check=False,
        )  # fmt: skip
        assert out.returncode == 0, out.stdout + out.stderr
        return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]

    def close(self) -> None:
        for p in reversed(self.procs):
            with contextlib.suppress(ProcessLookupError):
                p.send_signal(signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(10)
        self.net.down()


@pytest.fixture
def hosts(tmp_path: Path) -> Iterator[Hosts]:
    h = Hosts(tmp_path)
    try:
        yield h
    finally:
        h.close()


def _cfg(h: Hosts, **more: Any) -> dict[str, Any]:
    events = f"sqlite:///{h.tmp / 'events.db'}"
    return {"url": h.url, "events": events, "lease": LEASE, "ledger": str(h.tmp / "ledger"),
            "ids_file": str(h.tmp / "ids.json"), **more}  # fmt: skip


def test_partitioned_worker_host_loses_its_tasks_to_another(hosts: Hosts) -> None:
    cfg = _cfg(hosts, n=40, seconds=1.5, timeout=90)
    hosts.drive("enqueue", cfg)
    wcfg = {"url": cfg["url"], "events": cfg["events"], "lease": LEASE, "concurrency": 4}
    w1 = hosts.worker("h1", wcfg)
    ledger = Path(cfg["ledger"])
    wait_until(lambda: ledger.exists() and ledger.read_text().count(f" {w1.pid} ") >= 4, 30,
               "h1 running tasks")  # fmt: skip
    hosts.net.partition("h1", "engine")  # h1's running tasks can neither renew nor complete
    t_cut = time.monotonic()
    w2 = hosts.worker("h2", wcfg)
    # past the lease (several times over): h2 takes the lapsed tasks
    wait_until(lambda: time.monotonic() - t_cut > 4 * LEASE, 30, "the partition to last")
    hosts.net.heal("h1")
    a = hosts.drive("audit", dict(cfg, workers=[w1.pid, w2.pid], interrupted=[w1.pid]))
    record(f"[netns] partition h1<->engine {4 * LEASE:.0f}s: {a}")
    assert a["lost"] == 0 and a["succeeded"] == cfg["n"], a
    assert a["duplicates"] == 0, a  # h1's late completions were refused
    assert a["reruns"] >= 1, a  # h1's tasks ran again elsewhere
    assert a["unexplained"] == 0, a
    assert set(a["rerun_final_pids"]) <= {w2.pid}, a  # the fence kept h2's completion


def _throughput(h: Hosts, n: int) -> tuple[dict[str, Any], dict[str, Any]]:
    cfg = _cfg(h, n=n, seconds=0.0, timeout=120)
    wcfg = {"url": cfg["url"], "events": None, "lease": 10.0, "concurrency": 16}
    ws = [h.worker(host, wcfg) for host in ("h1", "h2", "h3")]
    h.drive("enqueue", cfg)
    a = h.drive("audit", dict(cfg, workers=[w.pid for w in ws], interrupted=[]))
    lat = h.drive("latency", {"url": h.url, "n": 60, "gap": 0.02})
    return a, lat


def test_latency_between_hosts(tmp_path: Path) -> None:
    figures = {}
    for label, delay in (("0 ms", None), ("5+-2 ms", (5.0, 2.0))):
        d = tmp_path / label.replace(" ", "").replace("+-", "pm")
        d.mkdir()
        h = Hosts(d, delay)
        try:
            a, lat = _throughput(h, 1000)
        finally:
            h.close()
        assert a["lost"] == 0 and a["duplicates"] == 0, a
        rate = a["tasks"] / a["run_span"] if a["run_span"] else 0.0
        figures[label] = (rate, lat)
        w2 = f"W2 p50={lat['p50_ms']:.1f} ms p95={lat['p95_ms']:.1f} ms"
        record(f"[netns] latency {label}: throughput={rate:.0f} tasks/s (3 hosts x 16) {w2} "
               f"({h.latency})")  # fmt: skip
    # every enqueue -> start crosses the client's and the worker's links at least once
    assert figures["5+-2 ms"][1]["p50_ms"] > figures["0 ms"][1]["p50_ms"] + 5


def test_schedulers_on_three_hosts_one_partitioned(hosts: Hosts) -> None:
    runs = 10
    procs = [
        hosts.spawn(host, f"scheduler-{host}",
                    hosts.net.python(host, "../scheduler/scheduler_main.py", hosts.url))
        for host in ("h1", "h2", "h3")
    ]  # fmt: skip
    for host in ("h1", "h2", "h3"):
        wait_until(lambda h=host: "scheduler ready" in hosts.log(f"scheduler-{h}"), 30, host)  # type: ignore[misc]
    drv = subprocess.Popen(
        hosts.net.python("ctl", "netns_driver.py", "schedule",
                         json.dumps({"url": hosts.url, "runs": runs, "lead": 2, "settle": 4})),
        env=Net.env(), stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert drv.stdout is not None
    t0 = float(drv.stdout.readline().split()[1])
    wait_until(lambda: time.time() > t0 + 2.5, 20, "two runs before the partition")
    hosts.net.partition("h3", "engine")  # h3 keeps its schedule's due times but cannot fire
    wait_until(lambda: time.time() > t0 + 6.5, 20, "the partition to last 4 s")
    hosts.net.heal("h3")  # h3's late claims of runs the others fired must not fire them again
    out, _ = drv.communicate(timeout=60)
    got = json.loads(out.strip().splitlines()[-1])
    record(f"[netns] schedulers on 3 hosts, one partitioned: {got}")
    assert all(p.poll() is None for p in procs), "a scheduler died"
    assert got["per_run"] == {str(k): 1 for k in range(runs)}, got
    assert got["enqueued_events_max"] == 1, got
