"""The ``omniq`` command line, through typer's CliRunner, on the embedded SQLite store."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
from click.testing import Result
from typer.testing import CliRunner

from omniq.core.cli import app

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


# -- the command line as operators run it: real processes ------------------------------------

E2E_DIR = Path(__file__).resolve().parent
# -P: no current directory on sys.path, as for the installed console script (bin/omniq)
CLI = [sys.executable, "-P", "-m", "omniq.core.cli"]
BLOCK_ASYNCPG = (
    "import sys; sys.modules['asyncpg'] = None; sys.argv[0] = 'omniq'; "
    "from omniq.core.cli import main; main()"
)


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMNIQ_")}
    env["PYTHONPATH"] = os.pathsep.join([str(E2E_DIR), env.get("PYTHONPATH", "")])
    env["COLUMNS"] = "200"
    env.update(extra)
    return env


def _omniq(
    *args: str,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    argv: list[str] | None = None,
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*(argv or CLI), *args],
        cwd=cwd,
        env=env or _env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _user_errors(tmp: Path) -> dict[str, tuple[list[str], dict[str, str], list[str] | None, str]]:
    """case -> (arguments, environment, launcher, text the one line must contain)."""
    (tmp / "a-file").write_text("")
    bad_path = f"sqlite:///{tmp / 'a-file' / 'q.db'}"
    postgres = "postgresql://postgres@127.0.0.1:5432/test"
    return {
        "bad path": (["status", "-u", bad_path], {}, None, "a-file"),
        "concurrency 0": (
            ["worker", "--burst", "--concurrency", "0", "-u", "memory://"],
            {},
            None,
            "--concurrency=0 is invalid: expected an integer >= 1",
        ),
        "bad --app": (
            ["worker", "--burst", "--app", "no_such_cli_module:oq"],
            {},
            None,
            "no module named 'no_such_cli_module'",
        ),
        "--app not an OmniQ": (
            ["worker", "--burst", "--app", "e2e_tasks:add"],
            {},
            None,
            "it is a function",
        ),
        "bad URL": (["status", "-u", "redis://127.0.0.1:notaport/0"], {}, None, "notaport"),
        "unknown backend": (["status", "-u", "nosuch://x"], {}, None, "known schemes"),
        "missing extra": (
            ["status", "-u", postgres],
            {},
            [sys.executable, "-P", "-c", BLOCK_ASYNCPG],
            "pip install 'omniq-storage[postgres]'",
        ),
        "bad OMNIQ_ variable": (
            ["status"],
            {"OMNIQ_TASK_TTL": "soon", "OMNIQ_TASK_QUEUE_URL": "memory://"},
            None,
            "OMNIQ_TASK_TTL='soon' is invalid",
        ),
    }


CASES = [
    "bad path",
    "concurrency 0",
    "bad --app",
    "--app not an OmniQ",
    "bad URL",
    "unknown backend",
    "missing extra",
    "bad OMNIQ_ variable",
]


@pytest.mark.parametrize("case", CASES)
def test_user_error_is_one_line_exit_2_and_a_traceback_only_with_debug(
    case: str, tmp_path: Path
) -> None:
    args, extra_env, launcher, expected = _user_errors(tmp_path)[case]
    env = _env(**extra_env)
    out = _omniq(*args, env=env, cwd=tmp_path, argv=launcher)
    assert out.returncode == 2, (out.stdout, out.stderr)
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith("omniq: error: ") and expected in lines[0], lines[0]
    assert "Traceback" not in out.stdout + out.stderr

    debug = _omniq("--debug", *args, env=env, cwd=tmp_path, argv=launcher)
    assert debug.returncode == 2
    assert "Traceback (most recent call last)" in debug.stderr
    assert debug.stderr.rstrip().splitlines()[-1] == lines[0]


def test_worker_app_resolves_from_the_current_directory(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'q.db'}"
    (tmp_path / "cwd_app_tasks.py").write_text(
        f"from omniq.core import OmniQ\noq = OmniQ({url!r})\ndef triple(x):\n    return 3 * x\n"
    )
    enq = _omniq("enqueue", "cwd_app_tasks:triple", "14", "-u", url, cwd=tmp_path)
    assert enq.returncode == 0, enq.stderr
    work = _omniq("worker", "--burst", "--app", "cwd_app_tasks:oq", cwd=tmp_path)
    assert work.returncode == 0, work.stderr
    assert "1 succeeded, 0 failed" in work.stdout
    res = _omniq("result", enq.stdout.strip(), "-u", url, cwd=tmp_path)
    assert "42" in res.stdout and "success" in res.stdout


def test_allow_list_is_parsed_and_reaches_the_worker(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'q.db'}"

    def enqueue() -> str:
        out = _omniq("enqueue", "e2e_tasks:add", "2", "3", "--max-retries", "0", "-u", url)
        assert out.returncode == 0, out.stderr
        return out.stdout.strip()

    refused = enqueue()
    out = _omniq("worker", "--burst", "-u", url, "--allow", "myapp.tasks", "--allow", "b,c")
    assert out.returncode == 0, out.stderr
    assert "allow=['myapp.tasks', 'b', 'c']" in out.stdout
    assert "0 succeeded, 1 failed" in out.stdout
    res = _omniq("result", refused, "-u", url)
    assert "error" in res.stdout and "e2e_tasks" in res.stdout, res.stdout

    allowed = enqueue()
    out = _omniq("worker", "--burst", "-u", url, "--allow", "myapp,e2e_tasks")
    assert "1 succeeded, 0 failed" in out.stdout, out.stdout + out.stderr
    assert "success" in _omniq("result", allowed, "-u", url).stdout

    empty = _omniq("worker", "--burst", "-u", url, "--allow", ",")
    assert empty.returncode == 2 and "--allow" in empty.stderr


def test_banner_and_errors_never_show_the_password() -> None:
    from omniq.storage.testing.servers import drop_namespace, unique_url

    secret = "s3cret-Pw"
    parts = urlsplit(unique_url("postgresql"))
    user = parts.username or "postgres"
    netloc = f"{user}:{secret}@{parts.hostname}:{parts.port or 5432}"
    url = urlunsplit(parts._replace(netloc=netloc))
    try:
        queue = f"banner-{uuid.uuid4().hex}"
        out = _omniq("worker", "--burst", "-q", queue, "-u", url)
        assert out.returncode == 0, out.stderr
        assert "omniq worker on postgresql://" in out.stdout
        assert f"{user}:***@" in out.stdout
        assert secret not in out.stdout + out.stderr
    finally:
        drop_namespace(url)

    down = _omniq("status", "-u", f"redis://:{secret}@127.0.0.1:1/0")
    assert down.returncode == 1 and "unreachable" in down.stderr
    assert ":***@127.0.0.1:1" in down.stderr and secret not in down.stdout + down.stderr
    debug = _omniq("--debug", "status", "-u", f"redis://:{secret}@127.0.0.1:1/0")
    assert "Traceback" in debug.stderr and secret not in debug.stdout + debug.stderr


def test_unreachable_postgres_error_and_debug_traceback_hide_the_password() -> None:
    secret = "Pg-s3cret-9Zw"
    url = f"postgresql://app:{secret}@127.0.0.1:1/jobs"
    down = _omniq("status", "-u", url)
    assert down.returncode == 1 and "unreachable" in down.stderr, down.stderr
    assert "app:***@127.0.0.1:1" in down.stderr and secret not in down.stdout + down.stderr
    debug = _omniq("--debug", "status", "-u", url)
    assert "Traceback" in debug.stderr and secret not in debug.stdout + debug.stderr
