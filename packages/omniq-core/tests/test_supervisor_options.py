"""What ``run_worker(processes=N)`` refuses before starting any process, and a child that
cannot start ending the supervisor instead of being restarted forever."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from omniq.core import OmniQ
from omniq.core.cli import app
from omniq.models import ConfigError


@pytest.mark.parametrize("processes", [0, -1, True, 1.5])
def test_processes_must_be_a_positive_integer(tmp_path: Path, processes: object) -> None:
    url = f"sqlite:///{tmp_path / 'q.db'}"
    with OmniQ(url) as oq, pytest.raises(ConfigError, match="processes"):
        oq.run_worker_sync(processes=processes, burst=True)  # type: ignore[arg-type]


@pytest.mark.anyio
async def test_async_form_validates_too(tmp_path: Path) -> None:
    async with OmniQ(f"sqlite:///{tmp_path / 'q.db'}") as oq:
        with pytest.raises(ConfigError, match="processes"):
            await oq.run_worker(processes=0, burst=True)


def test_an_in_process_store_cannot_be_shared_by_processes() -> None:
    with OmniQ("memory://") as oq, pytest.raises(ConfigError, match="memory"):
        oq.run_worker_sync(processes=2, burst=True)


def test_options_must_be_plain_data(tmp_path: Path) -> None:
    with OmniQ(f"sqlite:///{tmp_path / 'q.db'}") as oq, pytest.raises(ConfigError, match="plain"):
        oq.run_worker_sync(processes=2, burst=True, workers={"async": object()})


def test_a_child_that_cannot_start_stops_the_supervisor(tmp_path: Path) -> None:
    # concurrency=0 is refused by each child's pool: exit code 2, not a restart loop
    with OmniQ(f"sqlite:///{tmp_path / 'q.db'}") as oq, pytest.raises(ConfigError) as err:
        oq.run_worker_sync(processes=2, concurrency=0)
    assert "configuration error" in str(err.value)


def test_cli_refuses_zero_processes(tmp_path: Path) -> None:
    out = CliRunner().invoke(
        app, ["worker", "--processes", "0", "--url", f"sqlite:///{tmp_path / 'q.db'}"]
    )
    assert out.exit_code == 2
    assert "--processes" in out.output
