"""The FastAPI example application (docs/examples/fastapi_app.py) served by a real
uvicorn process: a handler enqueues, the lifespan's worker runs the task, the client
polls the result over HTTP; shutdown closes the OmniQ."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _poll(fn, ok, deadline: float = 30.0):  # type: ignore[no-untyped-def]
    end = time.monotonic() + deadline
    while True:
        try:
            value = fn()
            if ok(value):
                return value
        except httpx.TransportError:
            pass
        assert time.monotonic() < end, "timed out"
        time.sleep(0.05)  # polling interval of a deadline loop, not synchronization


@pytest.mark.slow
def test_fastapi_example_app_under_uvicorn(tmp_path: Path) -> None:
    port = _free_port()
    env = {**os.environ, "APP_DB": str(tmp_path / "app.db"), "OMNIQ_BASE_DIR": str(tmp_path)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "fastapi_app:app", "--app-dir", str(EXAMPLES),
         "--host", "127.0.0.1", "--port", str(port)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=base, timeout=10) as client:
            resp = _poll(lambda: client.post("/add", params={"a": 2, "b": 40}), lambda r: True)
            assert resp.status_code == 200, resp.text
            tid = resp.json()["id"]
            done = _poll(
                lambda: client.get(f"/tasks/{tid}").json(), lambda j: j["status"] == "success"
            )
            assert done == {"status": "success", "result": 42}
            assert client.get("/tasks/nope").status_code == 404
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode in (0, -15), out  # uvicorn re-raises SIGTERM once shut down
    assert "Application shutdown complete" in out
