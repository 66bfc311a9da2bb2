"""``omniq queue list|pause|resume``: the queue commands, registered onto the ``omniq``
Typer app with ``register(app)`` (as ``_dlq_cli`` registers the dead-letter commands)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from omniq.models import TaskStatus

from ._cli_common import UrlOpt, open_oq
from ._facade import OmniQ

__all__ = ["register"]

EventsOpt = Annotated[
    str | None,
    typer.Option(
        "--events-url", help="Event store for QUEUE_PAUSED/RESUMED (default: OMNIQ_EVENT_*)."
    ),
]


def register(app: typer.Typer, open_oq: Callable[..., OmniQ] = open_oq) -> None:
    """Add the ``queue`` group to ``app``."""
    group = typer.Typer(
        help="Queues: list them with their task counts, pause and resume them.",
        no_args_is_help=True,
    )
    app.add_typer(group, name="queue")

    @group.command("list")
    def list_cmd(
        as_json: Annotated[bool, typer.Option("--json")] = False,
        url: UrlOpt = None,
    ) -> None:
        """One row per queue (holding tasks, or paused): paused or not, tasks by status."""
        with open_oq(url) as oq:
            queues = oq.list_queues_sync()
        if as_json:
            typer.echo(
                json.dumps(
                    [
                        {
                            "name": q.name,
                            "paused": q.paused,
                            "counts": {s.value: q.count(s) for s in TaskStatus},
                        }
                        for q in queues
                    ]
                )
            )
            return
        table = Table("queue", "state", *(s.value for s in TaskStatus))
        for q in queues:
            table.add_row(
                q.name,
                "[bold red]paused[/]" if q.paused else "active",
                *(str(q.count(s)) for s in TaskStatus),
            )
        Console().print(table)

    @group.command("pause")
    def pause_cmd(name: str, url: UrlOpt = None, events_url: EventsOpt = None) -> None:
        """Pause a queue: its tasks stay pending (enqueue still works) and none starts on
        any worker until it is resumed; tasks already running finish."""
        with open_oq(url, events_url) as oq:
            changed = oq.pause_queue_sync(name)
        typer.echo(f"paused {name}" if changed else f"{name} was already paused")

    @group.command("resume")
    def resume_cmd(name: str, url: UrlOpt = None, events_url: EventsOpt = None) -> None:
        """Resume a paused queue: its tasks start again."""
        with open_oq(url, events_url) as oq:
            changed = oq.resume_queue_sync(name)
        typer.echo(f"resumed {name}" if changed else f"{name} was not paused")
