"""Hosts as Linux network namespaces, connected by a bridge that lives in a namespace
of its own: addresses exist only inside the namespaces made here, so nothing reaches
(or leaves) the machine's own interfaces. Faults are iptables rules and ``tc netem``
qdiscs inside a host's namespace.

Needs root (CAP_NET_ADMIN) and ``ip``/``iptables``/``tc``; ``Net.available()`` says why
not where they are missing, and the tests skip with that message.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

__all__ = ["Net"]

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent


def _run(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True)


class Net:
    """Hosts ``names`` at 10.77.<n>.1, .2, ... (in that order) on one bridge."""

    def __init__(self, names: list[str], subnet: int = 77) -> None:
        tag = f"{os.getpid() % 100000}"
        self.tag = tag
        self.switch = f"oq{tag}-sw"
        self.ns = {n: f"oq{tag}-{n}" for n in names}
        self.ip = {n: f"10.{subnet}.0.{i + 1}" for i, n in enumerate(names)}
        self.dev = {n: f"oq{tag}h{i}" for i, n in enumerate(names)}
        self._made: list[str] = []

    @staticmethod
    def available() -> str | None:
        """None when namespaces can be made here, else why not."""
        if os.geteuid() != 0:
            return "network namespaces need root (CAP_NET_ADMIN)"
        for tool in ("ip", "iptables", "tc"):
            if shutil.which(tool) is None and not os.path.exists(f"/usr/sbin/{tool}"):
                return f"{tool} is not installed (apt-get install iproute2 iptables)"
        probe = f"oqprobe{os.getpid()}"
        try:
            _run("ip", "netns", "add", probe)
        except (subprocess.CalledProcessError, OSError) as exc:
            return f"ip netns add is not permitted here: {exc}"
        with contextlib.suppress(subprocess.CalledProcessError):
            _run("ip", "netns", "del", probe)
        return None

    def up(self) -> Net:
        _run("ip", "netns", "add", self.switch)
        self._made.append(self.switch)
        sw = ["ip", "-n", self.switch]
        _run(*sw, "link", "add", "br0", "type", "bridge")
        _run(*sw, "link", "set", "br0", "up")
        for i, (name, ns) in enumerate(self.ns.items()):
            _run("ip", "netns", "add", ns)
            self._made.append(ns)
            dev, peer = self.dev[name], f"oq{self.tag}p{i}"
            _run("ip", "link", "add", dev, "netns", ns, "type", "veth", "peer", "name", peer,
                 "netns", self.switch)  # fmt: skip
            _run(*sw, "link", "set", peer, "master", "br0")
            _run(*sw, "link", "set", peer, "up")
            h = ["ip", "-n", ns]
            _run(*h, "addr", "add", f"{self.ip[name]}/24", "dev", dev)
            _run(*h, "link", "set", dev, "up")
            _run(*h, "link", "set", "lo", "up")
        return self

    def argv(self, host: str, *cmd: str) -> list[str]:
        """``cmd`` run inside ``host``'s namespace (``ip netns exec`` execs it: same pid)."""
        return ["ip", "netns", "exec", self.ns[host], *cmd]

    def python(self, host: str, script: str, *args: str) -> list[str]:
        return self.argv(host, sys.executable, str(HERE / script), *args)

    @staticmethod
    def env() -> dict[str, str]:
        env = dict(os.environ)
        paths = [str(HERE), str(ROOT / "tests" / "chaos"), str(ROOT), env.get("PYTHONPATH", "")]
        env["PYTHONPATH"] = os.pathsep.join(paths)
        return env

    def partition(self, host: str, other: str) -> None:
        """Drop every packet between ``host`` and ``other`` (both directions)."""
        ipt = ["ip", "netns", "exec", self.ns[host], "iptables"]
        _run(*ipt, "-A", "INPUT", "-s", self.ip[other], "-j", "DROP")
        _run(*ipt, "-A", "OUTPUT", "-d", self.ip[other], "-j", "DROP")

    def heal(self, host: str) -> None:
        _run("ip", "netns", "exec", self.ns[host], "iptables", "-F")

    def delay(self, host: str, ms: float, jitter_ms: float) -> bool:
        """Every packet ``host`` sends waits ``ms`` +- ``jitter_ms`` (netem); False when
        the kernel has no netem qdisc (then ``delay_relay`` stands in)."""
        try:
            self._netem(host, ms, jitter_ms)
        except subprocess.CalledProcessError:
            return False
        return True

    def _netem(self, host: str, ms: float, jitter_ms: float) -> None:
        _run("ip", "netns", "exec", self.ns[host], "tc", "qdisc", "add", "dev", self.dev[host],
             "root", "netem", "delay", f"{ms}ms", f"{jitter_ms}ms")  # fmt: skip

    def down(self) -> None:
        for ns in reversed(self._made):
            with contextlib.suppress(subprocess.CalledProcessError):
                _run("ip", "netns", "del", ns)
        self._made.clear()
