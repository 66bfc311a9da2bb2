"""The pytest plugin as a user meets it: a sample test suite (tests/sample) copied to a
temporary folder and run by pytest in a subprocess, with none of this repository's
conftests; the plugin is loaded through its ``pytest11`` entry point alone."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # two pytest runs in subprocesses

SAMPLE = Path(__file__).resolve().parent / "sample"


@pytest.fixture(scope="module")
def outcome(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, str], str]:
    """test name -> PASSED/FAILED/..., and pytest's output."""
    suite = tmp_path_factory.mktemp("suite")
    for f in SAMPLE.glob("*.py"):
        shutil.copy(f, suite / f.name)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMNIQ_", "PYTEST_"))}
    options = ["-rA", "-p", "no:cacheprovider", "-c", os.devnull]
    options += ["--rootdir", str(suite), "--confcutdir", str(suite)]
    run = subprocess.run(
        [sys.executable, "-m", "pytest", *options, str(suite)],
        cwd=suite,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    out = run.stdout + run.stderr
    found = dict(
        (name, state)
        for state, name in re.findall(r"^(PASSED|FAILED|ERROR|SKIPPED) \S*::(\w+)", out, re.M)
    )
    assert found, out
    return found, out


def test_the_plugin_is_registered_by_its_entry_point() -> None:
    from importlib.metadata import entry_points

    (ep,) = [e for e in entry_points(group="pytest11") if e.name == "omniq"]
    assert ep.value == "omniq.testing.plugin"


def test_the_sample_suite_passes_where_it_should(outcome: tuple[dict[str, str], str]) -> None:
    found, out = outcome
    expected = {name: ("FAILED" if name.endswith("_fails") else "PASSED") for name in found}
    assert found == expected, out
    assert len(found) == 13, out


def test_assert_enqueued_says_what_was_enqueued_instead(
    outcome: tuple[dict[str, str], str],
) -> None:
    _, out = outcome
    assert (
        "expected tasks:send_email('bob@example.com', **ANY) to be enqueued at least once, "
        "found never"
    ) in out, out
    assert "enqueued (1):" in out
    assert "tasks:send_email('ada@example.com', subject='welcome') on queue 'mail' [pending]" in out
    assert "expected tasks:send_email(*ANY, **ANY) to be enqueued 2 times, found once" in out
    assert "nothing was enqueued" in out


def test_an_inline_task_fails_the_test_like_a_worker_would(
    outcome: tuple[dict[str, str], str],
) -> None:
    _, out = outcome
    assert re.search(
        r"TaskFailedError: task tasks:open_handle \(\S+\) failed: "
        r"omniq\.models\.SerializationError: cannot serialize",
        out,
    ), out
