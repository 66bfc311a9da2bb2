"""``omniq dlq list|show|requeue|purge``: the dead-letter commands, registered onto the
``omniq`` Typer app with ``register(app)`` (as ``_schedule_cli`` registers scheduling)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated

import typer

from omniq.models import ConfigError

from ._cli_common import UrlOpt, open_oq
from ._facade import OmniQ

__all__ = ["register"]


def _fmt(t: float | None) -> str:
    return "-" if t is None else datetime.fromtimestamp(t, UTC).isoformat(timespec="seconds")


def register(app: typer.Typer, open_oq: Callable[[str | None], OmniQ] = open_oq) -> None:
    """Add the ``dlq`` group to ``app``."""
    group = typer.Typer(
        help="Dead letters (tasks failed for good): list, show, requeue, purge.",
        no_args_is_help=True,
    )
    app.add_typer(group, name="dlq")

    @group.command("list")
    def list_cmd(
        queue: Annotated[str | None, typer.Option("--queue", "-q")] = None,
        limit: Annotated[int, typer.Option("--limit", "-n")] = 100,
        as_json: Annotated[bool, typer.Option("--json")] = False,
        url: UrlOpt = None,
    ) -> None:
        """One line per dead letter: id, queue, function, attempts, finished, error."""
        with open_oq(url) as oq:
            rows = oq.dead_letters_sync(queue, limit=limit)
        if as_json:
            typer.echo(
                json.dumps(
                    [
                        {
                            "id": d.task.id,
                            "queue": d.task.queue,
                            "func": d.task.func,
                            "attempts": d.task.attempt,
                            "finished_at": d.result.finished_at if d.result else None,
                            "error": d.error,
                        }
                        for d in rows
                    ]
                )
            )
            return
        for d in rows:
            fin = d.result.finished_at if d.result else None
            typer.echo(
                f"{d.task.id}  {d.task.queue}  {d.task.func}  attempts={d.task.attempt}  "
                f"{_fmt(fin)}  {d.error}"
            )
        typer.echo(f"{len(rows)} dead letter(s)", err=True)

    @group.command("show")
    def show_cmd(task_id: str, url: UrlOpt = None) -> None:
        """The task and its final error with traceback."""
        with open_oq(url) as oq:
            d = oq.dead_letter_sync(task_id)
        if d is None:
            typer.echo(f"{task_id}: not a dead letter", err=True)
            raise typer.Exit(1)
        t = d.task
        typer.echo(f"id:        {t.id}\nqueue:     {t.queue}\nfunc:      {t.func}")
        typer.echo(f"attempts:  {t.attempt} (max_retries={t.max_retries})")
        if d.result is not None:
            typer.echo(f"finished:  {_fmt(d.result.finished_at)}  by {d.result.worker_id}")
            if d.result.error is not None:
                typer.echo(f"error:     {d.error}")
                if d.result.error.traceback:
                    typer.echo(d.result.error.traceback)

    @group.command("requeue")
    def requeue_cmd(
        task_ids: Annotated[list[str] | None, typer.Argument()] = None,
        all_: Annotated[bool, typer.Option("--all", help="Every dead letter.")] = False,
        queue: Annotated[str | None, typer.Option("--queue", "-q")] = None,
        url: UrlOpt = None,
    ) -> None:
        """Put dead letters back to pending with fresh attempts."""
        with open_oq(url) as oq:
            ids = list(task_ids or [])
            if all_:
                while page := oq.dead_letters_sync(queue, limit=500, offset=0):
                    done = oq.requeue_sync([d.task.id for d in page])
                    ids += done
                    if not done:
                        break
                typer.echo(f"requeued {len(ids)}")
                return
            if not ids:
                raise ConfigError("dlq requeue", "", "task ids or --all")
            done = oq.requeue_sync(ids)
        for i in done:
            typer.echo(i)
        skipped = len(set(ids)) - len(done)
        typer.echo(f"requeued {len(done)}" + (f", {skipped} skipped" if skipped else ""), err=True)

    @group.command("purge")
    def purge_cmd(
        yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False,
        url: UrlOpt = None,
    ) -> None:
        """Delete every dead letter and its result."""
        if not yes:
            typer.confirm("Delete all dead letters?", abort=True)
        with open_oq(url) as oq:
            n = oq.purge_dead_letters_sync()
        typer.echo(f"purged {n}")
