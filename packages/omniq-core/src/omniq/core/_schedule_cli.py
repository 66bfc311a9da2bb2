"""Command-line pieces for scheduling: ``omniq scheduler`` and ``omniq schedule
add|list|pause|resume|rm``, registered onto the ``omniq`` Typer app with ``register(app)``.

``omniq worker`` runs a scheduler beside its pool unless ``--no-scheduler`` is given
(safe: every run fires once however many workers schedule); see
``_worker_cmd.run_worker_with_scheduler``, re-exported here.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any

import typer

from omniq.models import ConfigError, Schedule, redact_url

from ._cli_common import OmniQGroup, UrlOpt, open_oq
from ._facade import OmniQ
from ._worker_cmd import run_worker_with_scheduler

__all__ = ["make_app", "register", "run_worker_with_scheduler"]


def _instant(value: str | None, name: str) -> float | None:
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        dt = datetime.fromisoformat(value)
    except ValueError:
        raise ConfigError(name, value, "Unix seconds or an ISO 8601 time") from None
    return (dt if dt.tzinfo else dt.replace(tzinfo=UTC)).timestamp()


def _fmt(t: float | None) -> str:
    return "-" if t is None else datetime.fromtimestamp(t, UTC).isoformat(timespec="seconds")


def _describe(s: Schedule) -> str:
    if s.expression:
        return s.expression
    return f"every {s.interval:g}s" if s.interval else f"at {_fmt(s.at)}"


def register(app: typer.Typer, open_oq: Callable[[str | None], OmniQ] = open_oq) -> None:
    """Add ``scheduler`` and the ``schedule`` group to ``app``."""
    group = typer.Typer(
        help="Create, list, pause, resume and delete schedules.", no_args_is_help=True
    )
    app.add_typer(group, name="schedule")

    @app.command("scheduler")
    def scheduler_cmd(
        url: UrlOpt = None,
        max_sleep: Annotated[
            float, typer.Option(help="Longest sleep between passes (seconds).")
        ] = 1.0,
    ) -> None:
        """Run a scheduler alone (no worker) until SIGTERM/SIGINT. Run as many as you
        like: each due run is enqueued once."""
        with open_oq(url) as oq:
            typer.echo(f"scheduler running on {redact_url(oq.task_queue_url)}")
            stats = oq.run_scheduler_sync(max_sleep=max_sleep)
            typer.echo(f"scheduler stopped: fired {stats.fired}, recovered {stats.recovered}")

    @group.command("add")
    def add_cmd(  # noqa: PLR0917 (Typer maps parameters to options)
        func: Annotated[str, typer.Argument(help="Task function as module:qualname.")],
        cron: Annotated[
            str | None, typer.Option(help="Cron: 5 fields, or 6 with seconds first.")
        ] = None,
        interval: Annotated[float | None, typer.Option(help="Seconds between runs.")] = None,
        at: Annotated[str | None, typer.Option(help="One run at this instant.")] = None,
        arg: Annotated[
            list[str] | None, typer.Option("--arg", help="Positional argument (JSON).")
        ] = None,
        kwargs: Annotated[str | None, typer.Option(help="Keyword arguments (JSON object).")] = None,
        name: Annotated[str | None, typer.Option()] = None,
        timezone: Annotated[str | None, typer.Option(help="IANA zone for cron fields.")] = None,
        queue: Annotated[str | None, typer.Option()] = None,
        start_at: Annotated[str | None, typer.Option()] = None,
        end_at: Annotated[str | None, typer.Option()] = None,
        max_runs: Annotated[int | None, typer.Option()] = None,
        misfire_policy: Annotated[str | None, typer.Option(help="run_once or skip.")] = None,
        url: UrlOpt = None,
    ) -> None:
        """Create a schedule; prints its id."""
        try:
            args = [json.loads(a) for a in arg or []]
            kw = json.loads(kwargs) if kwargs else None
        except json.JSONDecodeError as exc:
            raise ConfigError("--arg/--kwargs", arg or kwargs, "JSON values", str(exc)) from None
        options: dict[str, Any] = {}
        if misfire_policy is not None:
            options["misfire_policy"] = misfire_policy
        with open_oq(url) as oq:
            s = oq.schedule_sync(
                func,
                cron=cron,
                interval=interval,
                at=_instant(at, "--at"),
                args=args,
                kwargs=kw,
                name=name,
                timezone=timezone,
                queue=queue,
                start_at=_instant(start_at, "--start-at"),
                end_at=_instant(end_at, "--end-at"),
                max_runs=max_runs,
                **options,
            )
            typer.echo(f"{s.id}  {_describe(s)}  next run {_fmt(s.next_run_at)}")

    @group.command("list")
    def list_cmd(
        url: UrlOpt = None,
        as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
    ) -> None:
        """List schedules with their state, next run and run count."""
        import msgspec

        with open_oq(url) as oq:
            schedules = oq.list_schedules_sync()
        if as_json:
            for s in schedules:
                typer.echo(msgspec.json.encode(s).decode())
            return
        from rich.console import Console
        from rich.table import Table

        table = Table("id", "name", "func", "rule", "tz", "state", "next run (UTC)", "runs")
        for s in schedules:
            table.add_row(
                s.id,
                s.name or "",
                s.task.func,
                _describe(s),
                s.timezone,
                s.state.value,
                _fmt(s.next_run_at),
                str(s.runs),
            )
        Console(width=200).print(table)

    def _change(action: str, url: str | None, schedule_id: str) -> None:
        with open_oq(url) as oq:
            if action == "pause":
                ok = oq.pause_schedule_sync(schedule_id) is not None
            elif action == "resume":
                ok = oq.resume_schedule_sync(schedule_id) is not None
            else:
                ok = oq.delete_schedule_sync(schedule_id)
        if not ok:
            typer.echo(f"error: no schedule {schedule_id}", err=True)
            raise typer.Exit(1)
        done = {"pause": "paused", "resume": "resumed", "rm": "deleted"}[action]
        typer.echo(f"{schedule_id} {done}")

    @group.command("pause")
    def pause_cmd(schedule_id: str, url: UrlOpt = None) -> None:
        """Pause a schedule (persisted; SCHEDULE_PAUSED event)."""
        _change("pause", url, schedule_id)

    @group.command("resume")
    def resume_cmd(schedule_id: str, url: UrlOpt = None) -> None:
        """Resume a schedule from its next due time (SCHEDULE_RESUMED event)."""
        _change("resume", url, schedule_id)

    @group.command("rm")
    def rm_cmd(schedule_id: str, url: UrlOpt = None) -> None:
        """Delete a schedule (tasks already enqueued stay)."""
        _change("rm", url, schedule_id)


def make_app() -> typer.Typer:
    """A stand-alone app with just the scheduling commands (for tests and embedding)."""
    app = typer.Typer(cls=OmniQGroup, no_args_is_help=True, add_completion=False)
    register(app)
    return app
