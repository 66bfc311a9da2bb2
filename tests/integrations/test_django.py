"""omniq.contrib.django in a real Django project (tests/integrations/django_project),
driven through ``manage.py`` subprocesses on SQLite and on PostgreSQL: transactional
enqueue through Django's own connection and ``enqueue_on_commit`` (rollback: nothing;
commit: stored), ``omniq_worker --burst`` runs the tasks, ``omniq_scheduler`` runs and
stops cleanly on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from omniq.storage.testing.servers import POSTGRES_URL, drop_namespace, unique_url

PROJECT = Path(__file__).resolve().parent / "django_project"


@pytest.fixture(params=["sqlite", "postgres"])
def env(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, str]]:
    base = {**os.environ, "OMNIQ_BASE_DIR": str(tmp_path), "TEST_DB": request.param}
    base.pop("DJANGO_SETTINGS_MODULE", None)
    if request.param == "sqlite":
        yield {**base, "TEST_SQLITE": str(tmp_path / "db.sqlite3")}
        return
    url = unique_url("postgresql")
    user, _, rest = POSTGRES_URL.split("://", 1)[1].partition("@")
    schema = url.rsplit("schema=", 1)[1]
    try:
        yield {
            **base,
            "TEST_PG_USER": user,
            "TEST_PG_NAME": rest.rsplit("/", 1)[1],
            "TEST_OMNIQ_URL": url,
            # Django's own tables go to a schema of their own too (dropped below).
            "PGOPTIONS": f"-c search_path={schema}_django",
        }
    finally:
        drop_namespace(url)
        drop_namespace(url.replace(schema, f"{schema}_django"))


def manage(env: dict[str, str], *args: str, timeout: float = 120) -> str:
    out = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=PROJECT, env=env, capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


@pytest.mark.slow
def test_django_project(env: dict[str, str]) -> None:
    if env["TEST_DB"] == "postgres":
        # The schema for Django's tables must exist before Django connects.
        import asyncio

        import asyncpg  # type: ignore[import-untyped]

        async def create() -> None:
            conn = await asyncpg.connect(POSTGRES_URL)
            schema = env["PGOPTIONS"].split("=", 1)[1]
            await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
            await conn.close()

        asyncio.run(create())
    report = json.loads(manage(env, "shell", "-c", "import proj.scenario").splitlines()[-1])
    ids, stored = report["ids"], report["stored"]
    assert report["orders"] == 1  # the rolled-back order is gone, the committed one kept
    assert stored == {
        "tx_rolled_back": False,
        "on_commit_rolled_back": False,
        "tx_committed": True,
        "on_commit_committed": True,
    }
    assert ids["seen_before_commit"] == "False"  # written in the transaction, not before
    assert ids["on_commit_before_commit"] == "False"  # enqueued at the commit

    out = manage(env, "omniq_worker", "--burst", "--no-scheduler")
    assert "omniq worker stopped" in out
    wanted = [ids["tx_committed"], ids["on_commit_committed"]]
    results = json.loads(
        manage(
            {**env, "RESULT_IDS": ",".join(wanted)}, "shell", "-c", "import proj.results"
        ).splitlines()[-1]
    )
    assert results == {ids["tx_committed"]: 5, ids["on_commit_committed"]: 7}

    sched = subprocess.Popen(
        [sys.executable, "manage.py", "omniq_scheduler"],
        cwd=PROJECT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        assert sched.stdout is not None
        assert "omniq scheduler starting" in sched.stdout.readline()
        with pytest.raises(subprocess.TimeoutExpired):
            sched.wait(timeout=2)  # still running: it waits for due schedules
    finally:
        sched.send_signal(signal.SIGTERM)
        out, _ = sched.communicate(timeout=30)
    assert sched.returncode == 0, out
    assert "omniq scheduler stopped" in out


def test_omniq_worker_waits_for_an_unreachable_store_then_fails(tmp_path: Path) -> None:
    """``omniq_worker --store-wait`` keeps trying (each failed try logged) and then
    fails with the store's error, as ``omniq worker`` does."""
    user, _, rest = POSTGRES_URL.split("://", 1)[1].partition("@")
    env = {
        **os.environ,
        "OMNIQ_BASE_DIR": str(tmp_path),
        "TEST_DB": "postgres",
        "TEST_PG_USER": user,
        "TEST_PG_NAME": rest.rsplit("/", 1)[1],
        "TEST_OMNIQ_URL": "redis://127.0.0.1:1/0",  # nothing listens on port 1
    }
    env.pop("DJANGO_SETTINGS_MODULE", None)
    out = subprocess.run(
        [sys.executable, "manage.py", "omniq_worker", "--burst", "--store-wait", "8"],
        cwd=PROJECT, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert out.returncode != 0
    assert "trying again in" in out.stderr, out.stderr
    assert "BackendUnavailableError" in out.stderr and "unreachable" in out.stderr
