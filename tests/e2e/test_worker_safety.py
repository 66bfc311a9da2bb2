"""What a worker runs and how it starts, end to end on SQLite: the module allow-list
(setting and environment), process workers under a script without a ``__main__`` guard,
and a worker type whose extra is missing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import msgspec
import pytest

from omniq.core import OmniQ
from omniq.models import EventType, TaskStatus

pytestmark = pytest.mark.anyio
HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
WAIT = 30.0


def run_script(code: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` as a script file (its own ``__main__``) in a fresh interpreter."""
    script = cwd / "script.py"
    script.write_text(textwrap.dedent(code))
    full = {k: v for k, v in os.environ.items() if not k.startswith("OMNIQ_")}
    full.update(env)
    return subprocess.run(
        [sys.executable, str(script)],
        cwd=cwd,
        env=full,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def write_module(where: Path, name: str, marker: Path) -> None:
    """A task module whose import appends a line to ``marker`` (counts imports)."""
    (where / f"{name}.py").write_text(
        f"with open({str(marker)!r}, 'a') as f:\n    f.write('imported\\n')\n"
        "def mul(a, b):\n    return a * b\n"
    )


async def test_forged_commands_end_in_error_at_once_and_never_run(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'q.db'}"
    marker = tmp_path / "pwned"
    async with OmniQ(url, event_storage=url) as oq:
        forged = [
            msgspec.structs.replace(oq.build("operator:add", (arg,), max_retries=3), func=f)
            for f, arg in [
                ("os:system", f"touch {marker}"),
                ("subprocess:getoutput", f"touch {marker}"),
                ("builtins:eval", f"open({str(marker)!r}, 'w')"),
            ]
        ]
        await oq.enqueue_many(forged)
        async with oq.worker():  # a default worker: settings.allowed_modules == ("*",)
            results = [await oq.get_result(t.id, wait=True, timeout=WAIT) for t in forged]
        for task, r in zip(forged, results, strict=True):
            assert r is not None and r.status is TaskStatus.ERROR and r.error is not None
            assert r.error.type.endswith("InvalidTaskError"), r.error
            assert "outside the allowed modules" in r.error.message
            assert r.attempts == 1  # refused: not retried although max_retries=3
            events = [e.type for e in await oq.get_events(task.id)]
            assert events == [EventType.ENQUEUED, EventType.ERROR], events
    assert not marker.exists()


async def test_setting_refuses_a_module_without_importing_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    imports = tmp_path / "imports"
    write_module(tmp_path, "sidefx_tasks", imports)
    monkeypatch.syspath_prepend(str(tmp_path))
    url = f"sqlite:///{tmp_path / 'q.db'}"
    try:
        async with OmniQ(url, allowed_modules="myapp.*") as oq:
            task = await oq.enqueue("sidefx_tasks:mul", (6, 7))
            async with oq.worker(worker_type="process"):
                r = await oq.get_result(task.id, wait=True, timeout=WAIT)
    finally:
        sys.modules.pop("sidefx_tasks", None)
    assert r is not None and r.status is TaskStatus.ERROR and r.error is not None
    assert "outside the allowed modules" in r.error.message
    assert not imports.exists()


def test_environment_variable_locks_a_worker_down(tmp_path: Path) -> None:
    imports = tmp_path / "imports"
    write_module(tmp_path, "sidefx_tasks", imports)
    write_module(tmp_path, "app_tasks", tmp_path / "app_imports")
    proc = run_script(
        f"""
        import json
        from omniq.core import OmniQ

        with OmniQ("sqlite:///{tmp_path / "q.db"}") as oq:
            assert oq.settings.allowed_modules == ("app_tasks",), oq.settings.allowed_modules
            bad = oq.enqueue_sync("sidefx_tasks:mul", (2, 3))
            good = oq.enqueue_sync("app_tasks:mul", (2, 3))
            oq.run_worker_sync(burst=True)
            out = [oq.get_result_sync(t.id) for t in (bad, good)]
            print(json.dumps([[r.status.value, r.value] for r in out]))
        """,
        tmp_path,
        OMNIQ_ALLOWED_MODULES="app_tasks.*",
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.splitlines()[-1]) == [["error", None], ["success", 6]]
    assert not imports.exists()


def test_process_worker_does_not_rerun_an_unguarded_script(tmp_path: Path) -> None:
    """No ``if __name__ == "__main__":`` guard: the body must still run exactly once."""
    runs = tmp_path / "runs"
    write_module(tmp_path, "guardless_tasks", tmp_path / "task_imports")
    url = f"sqlite:///{tmp_path / 'q.db'}"
    proc = run_script(
        f"""
        import os
        from omniq.core import OmniQ

        with open({str(runs)!r}, "a") as f:
            f.write(f"{{os.getpid()}}\\n")
        with OmniQ({url!r}) as oq:
            task = oq.enqueue_sync("guardless_tasks:mul", (6, 7))
            oq.run_worker_sync(worker_type="process", process_workers=2, burst=True)
            r = oq.get_result_sync(task.id)
            print(r.status.value, r.value)
        """,
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["success", "42"]
    assert len(runs.read_text().splitlines()) == 1, runs.read_text()  # parent only
    with OmniQ(url) as oq:
        tasks = oq.list_tasks_sync()
    assert [(t.func, t.status) for t in tasks] == [("guardless_tasks:mul", TaskStatus.SUCCESS)]


def test_main_function_on_a_process_worker_is_refused_clearly(tmp_path: Path) -> None:
    proc = run_script(
        """
        from omniq.core import OmniQ

        def triple(x):
            return x * 3

        if __name__ == "__main__":
            with OmniQ("sqlite:///q.db", dill_enabled=True, dill_secret="s" * 32) as oq:
                task = oq.enqueue_sync(triple, (2,), worker="process", max_retries=3)
                oq.run_worker_sync(burst=True)
                r = oq.get_result_sync(task.id)
                print(r.status.value, r.attempts, r.error.type, "|", r.error.message)
        """,
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    head, message = proc.stdout.strip().split(" | ")
    assert head == "error 1 omniq.models.InvalidTaskError"
    assert "__main__:triple" in message
    assert "move the function into an importable module" in message


def test_missing_gevent_extra_refuses_to_start_and_claims_nothing(tmp_path: Path) -> None:
    proc = run_script(
        f"""
        import json, sys
        sys.modules["gevent"] = None  # as if omniq-workers[gevent] were not installed
        from omniq.core import OmniQ
        from omniq.models import MissingExtraError

        with OmniQ("sqlite:///{tmp_path / "q.db"}") as oq:
            ids = [oq.enqueue_sync("operator:add", (i, 1)).id for i in range(30)]
            try:
                oq.run_worker_sync(worker_type="gevent", burst=True)
            except MissingExtraError as exc:
                print("refused:", exc)
            else:
                print("ran")
            tasks = [oq.get_task_sync(i) for i in ids]
            print(json.dumps(sorted({{(t.status.value, t.attempt) for t in tasks}})))
        """,
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    first, last = proc.stdout.strip().splitlines()
    assert first.startswith("refused:") and "omniq-workers[gevent]" in first, first
    assert json.loads(last) == [["pending", 0]]
