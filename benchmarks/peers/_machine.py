"""Machine facts printed with every table: CPU, cores, load, Python, engine versions."""

from __future__ import annotations

import os
import platform
import subprocess


def _run(argv: list[str]) -> str:
    try:
        return subprocess.run(
            argv, capture_output=True, text=True, timeout=10, check=False
        ).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return "?"


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def redis_version() -> str:
    info = _run(["redis-cli", "-h", "127.0.0.1", "-p", "6379", "info", "server"])
    for line in info.splitlines():
        if line.startswith("redis_version:"):
            return line.split(":", 1)[1].strip()
    return "?"


def postgres_version() -> str:
    return _run(
        ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "test", "-tAc", "show server_version"]
    )


def machine_info() -> dict[str, str]:
    load = os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0)
    mem = "?"
    try:
        with open("/proc/meminfo") as f:
            kb = int(f.readline().split()[1])
            mem = f"{kb / 1024 / 1024:.1f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    return {
        "cpu": cpu_model(),
        "cores": str(os.cpu_count()),
        "memory": mem,
        "load (1/5/15 min)": " ".join(f"{x:.2f}" for x in load),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "redis": redis_version(),
        "postgresql": postgres_version(),
    }
