"""A real Prometheus server scraping ``omniq worker --processes 2 --metrics-port``.

The worker runs as operators run it (the command line, two worker processes under the
supervisor); Prometheus (Debian's ``prometheus`` binary, installed by scripts/services)
runs as a private instance with its own config, data directory and port, and the test
asks it over its HTTP API whether the numbers it scraped match the tasks run, then opens
Prometheus's console on them in headless Chromium: the screenshot goes to
tests/e2e/artifacts/ (and, with OMNIQ_DOCS_SHOTS=1, to docs/images/prometheus.png).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from tests.web.browser import DOCS_IMAGES, DOCS_SHOTS, chromium, save_shot

from omniq.core import OmniQ
from omniq.models import TaskStatus, now

from .conftest import BACKENDS, HERE

pytestmark = [pytest.mark.slow]
WAIT = 90.0
ARTIFACTS = HERE / "artifacts"
CLI = [sys.executable, "-P", "-m", "omniq.core.cli"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(cond: Callable[[], object], what: str, timeout: float = WAIT) -> None:
    deadline = now() + timeout
    while not cond():
        assert now() < deadline, f"timed out waiting for {what}"
        threading.Event().wait(0.2)  # poll interval, not synchronization


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


@pytest.fixture
def prometheus_bin() -> str:
    found = shutil.which("prometheus") or (
        "/usr/bin/prometheus" if os.path.exists("/usr/bin/prometheus") else None
    )
    if found is None:
        pytest.fail(
            "the prometheus binary is missing: run scripts/services (apt-get install prometheus)"
        )
    return found


@pytest.fixture
def sqlite_url(tmp_path: Path) -> Iterator[str]:
    spec = BACKENDS["sqlite"]
    url = spec.url(tmp_path)
    yield url
    if spec.cleanup is not None:
        spec.cleanup(url)


def query(prom_port: int, promql: str) -> list[dict[str, object]]:
    qs = urllib.parse.urlencode({"query": promql})
    with urllib.request.urlopen(
        f"http://127.0.0.1:{prom_port}/api/v1/query?{qs}", timeout=10
    ) as resp:
        body = json.loads(resp.read())
    assert body["status"] == "success", body
    return list(body["data"]["result"])


def scalar(prom_port: int, promql: str) -> float | None:
    """The single value of an instant query, None while Prometheus has no data."""
    try:
        result = query(prom_port, promql)
    except OSError:
        return None
    if len(result) != 1:
        return None
    return float(result[0]["value"][1])  # type: ignore[index]


def console_shot(prom_port: int, ok_fn: str, ok_n: int) -> None:
    """Prometheus's console (its classic UI, as Debian ships it) on the worker's task
    counters, as an operator would look at them; saved as a screenshot."""
    expr = '{__name__=~"omniq_tasks_(started|succeeded|failed)_total", job="omniq"}'
    qs = urllib.parse.urlencode({"g0.expr": expr, "g0.tab": "1"})
    with chromium(1400, 800) as driver:
        driver.get(f"http://127.0.0.1:{prom_port}/classic/graph?{qs}")

        rows: list[str] = []

        def ok_row() -> bool:
            try:
                for row in driver.find_elements(By.CSS_SELECTOR, "table tr"):
                    text = row.text
                    if "omniq_tasks_succeeded_total" in text and ok_fn in text:
                        rows.append(text)
                        return True
            except StaleElementReferenceException:  # the table re-rendered: read it anew
                pass
            return False

        wait_for(ok_row, "the console to list the successes")
        assert rows[-1].split()[-1] == str(ok_n)
        path = save_shot(driver, ARTIFACTS, "prometheus")
    if DOCS_SHOTS:  # refresh the picture in docs/observability.md
        shutil.copyfile(path, DOCS_IMAGES / "prometheus.png")


def test_prometheus_scrapes_a_multiprocess_worker(
    prometheus_bin: str, sqlite_url: str, tmp_path: Path
) -> None:
    import obs_tasks as ot

    metrics_port, prom_port = free_port(), free_port()
    while prom_port == metrics_port:
        prom_port = free_port()
    ok_n, fail_n = 30, 4
    with OmniQ(sqlite_url) as oq:
        oq.enqueue_many_sync([(ot.ok, (i,)) for i in range(ok_n)])
        oq.enqueue_many_sync([(ot.fail, (i,)) for i in range(fail_n)], max_retries=0)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMNIQ_", "PROMETHEUS_"))}
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), env.get("PYTHONPATH", "")])
    log = (tmp_path / "worker.log").open("wb")
    worker = subprocess.Popen(
        [
            *CLI,
            "worker",
            "--url",
            sqlite_url,
            "--processes",
            "2",
            "--metrics-port",
            str(metrics_port),
            "--no-scheduler",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        "scrape_configs:\n  - job_name: omniq\n    static_configs:\n"
        f"      - targets: ['127.0.0.1:{metrics_port}']\n"
    )
    prom_log = (tmp_path / "prometheus.log").open("wb")
    prom = subprocess.Popen(
        [
            prometheus_bin,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{prom_port}",
        ],
        stdout=prom_log,
        stderr=subprocess.STDOUT,
    )
    try:
        with OmniQ(sqlite_url) as oq:
            wait_for(
                lambda: (
                    oq.counts_sync()
                    == {
                        ("default", TaskStatus.SUCCESS): ok_n,
                        ("default", TaskStatus.ERROR): fail_n,
                    }
                ),
                "the worker to run every task",
            )
        ok_fn, fail_fn = "obs_tasks:ok", "obs_tasks:fail"
        succeeded = f'sum(omniq_tasks_succeeded_total{{job="omniq",function="{ok_fn}"}})'
        failed = f'sum(omniq_tasks_failed_total{{job="omniq",function="{fail_fn}"}})'
        wait_for(lambda: scalar(prom_port, succeeded) == ok_n, "Prometheus to see the successes")
        wait_for(lambda: scalar(prom_port, failed) == fail_n, "Prometheus to see the failures")
        started = 'sum(omniq_tasks_started_total{job="omniq"})'
        assert scalar(prom_port, started) == ok_n + fail_n
        assert scalar(prom_port, 'sum(omniq_task_duration_seconds_count{job="omniq"})') == (
            ok_n + fail_n
        )
        wait_for(
            lambda: (
                scalar(prom_port, 'omniq_queue_tasks{queue="default",status="success"}') == ok_n
            ),
            "the store gauge",
        )
        assert scalar(prom_port, 'sum(omniq_tasks_running{job="omniq"})') == 0
        assert scalar(prom_port, 'up{job="omniq"}') == 1
        # one series per queue and function for the whole command, not one per process
        per_pid = query(prom_port, 'omniq_tasks_started_total{job="omniq"}')
        assert per_pid and all("pid" not in r["metric"] for r in per_pid)  # type: ignore[operator]
        console_shot(prom_port, ok_fn, ok_n)
    finally:
        _stop(worker)
        _stop(prom)
        log.close()
        prom_log.close()
    assert worker.returncode == 0, (tmp_path / "worker.log").read_text()
