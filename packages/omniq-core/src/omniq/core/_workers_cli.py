"""``omniq workers``: the live worker processes, registered onto the ``omniq`` Typer app
with ``register(app)`` (as ``_dlq_cli`` registers the dead-letter commands)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from omniq.models import WorkerInfo, now

from ._cli_common import UrlOpt, open_oq
from ._facade import OmniQ

__all__ = ["register", "workers_table"]

_COLUMNS = (
    "id",
    "host",
    "pid",
    "queues",
    "type",
    "concurrency",
    "version",
    "started",
    "last seen",
    "running",
)


def _when(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="seconds")


def workers_table(workers: list[WorkerInfo], at: float) -> Table:
    """One row per worker; ``last seen`` as seconds before ``at``."""
    table = Table(title=f"{len(workers)} live worker(s)")
    for col in _COLUMNS:
        right = col in ("pid", "concurrency", "running")
        table.add_column(col, justify="right" if right else "left", no_wrap=col == "id")
    for w in workers:
        table.add_row(
            w.id,
            w.hostname,
            str(w.pid),
            ",".join(w.queues),
            w.worker_type.value,
            str(w.concurrency),
            w.version,
            _when(w.started_at),
            f"{max(0.0, at - w.last_seen):.1f}s ago",
            str(len(w.running)),
        )
    return table


def register(app: typer.Typer, open_oq: Callable[[str | None], OmniQ] = open_oq) -> None:
    """Add the ``workers`` command to ``app``."""

    @app.command("workers")
    def workers_cmd(
        as_json: Annotated[
            bool, typer.Option("--json", help="One JSON object per worker, with task ids.")
        ] = False,
        url: UrlOpt = None,
    ) -> None:
        """The live workers on every host: id, host, pid, queues, type, concurrency,
        version, started, last seen, running task count."""
        with open_oq(url) as oq:
            found = oq.list_workers_sync()
        if as_json:
            typer.echo(
                json.dumps(
                    [
                        {
                            "id": w.id,
                            "hostname": w.hostname,
                            "pid": w.pid,
                            "queues": list(w.queues),
                            "worker_type": w.worker_type.value,
                            "concurrency": w.concurrency,
                            "version": w.version,
                            "started_at": w.started_at,
                            "last_seen": w.last_seen,
                            "running": list(w.running),
                        }
                        for w in found
                    ]
                )
            )
            return
        Console().print(workers_table(found, now()))
