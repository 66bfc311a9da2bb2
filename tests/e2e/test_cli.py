"""The ``omniq`` command line, through typer's CliRunner, on the embedded SQLite store."""

from __future__ import annotations

from pathlib import Path

from click.testing import Result
from typer.testing import CliRunner

from omniq.core._cli import app

runner = CliRunner()


def test_enqueue_worker_status_result_events_cancel(tmp_path: Path) -> None:
    env = {
        "OMNIQ_TASK_QUEUE_URL": f"sqlite:///{tmp_path / 'q.db'}",
        "OMNIQ_EVENT_STORAGE_TYPE": "sqlite",
    }

    def run(*args: str) -> Result:
        return runner.invoke(app, list(args), env=env)

    out = run("enqueue", "e2e_tasks:add", "2", "3")
    assert out.exit_code == 0, out.output
    task_id = out.output.strip()
    held = run("enqueue", "e2e_tasks:add", "1", "1", "--delay", "3600")
    held_id = held.output.strip()

    status = run("status")
    assert status.exit_code == 0 and "default" in status.output

    work = run("worker", "--burst")
    assert work.exit_code == 0, work.output
    assert "1 succeeded" in work.output

    res = run("result", task_id)
    assert res.exit_code == 0 and "success" in res.output and "5" in res.output

    ev = run("events", task_id)
    assert ev.exit_code == 0 and "COMPLETE" in ev.output

    assert run("cancel", held_id).exit_code == 0
    again = run("cancel", held_id)
    assert again.exit_code == 1
    pending = run("result", held_id)
    assert "cancelled" in pending.output


def test_worker_with_app_instance(tmp_path: Path, monkeypatch: object) -> None:
    import sys

    url = f"sqlite:///{tmp_path / 'q.db'}"
    mod = tmp_path / "cli_app_mod.py"
    mod.write_text(f"from omniq.core import OmniQ\noq = OmniQ({url!r})\n")
    sys.path.insert(0, str(tmp_path))
    try:
        runner.invoke(app, ["enqueue", "e2e_tasks:async_mul", "6", "7", "-u", url])
        out = runner.invoke(app, ["worker", "--burst", "--app", "cli_app_mod:oq"])
        assert out.exit_code == 0, out.output
        assert "1 succeeded" in out.output
    finally:
        sys.path.remove(str(tmp_path))
