"""The ``omniq`` command line: worker, enqueue, status, result, cancel, events, plus the
scheduling (``_schedule_cli``) and dead-letter (``_dlq_cli``) commands.

``app`` is the Typer application and ``main`` runs it (``python -m omniq.core.cli``). The
``omniq`` console script starts in ``omniq.core._entry``, which runs ``omniq worker``
without Typer and hands every other command line to ``main``. A mistake in what the
operator typed or configured is reported in one line on stderr with exit code 2;
``omniq --debug ...`` adds the traceback.
"""

from __future__ import annotations

import importlib
import json
import os
import platform
import re
import sys
import time
from contextlib import AbstractContextManager
from importlib.metadata import distributions
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from omniq.models import TaskStatus, to_datetime

from ._cli_common import DEBUG_KEY, OmniQGroup, UrlOpt, open_oq
from ._facade import OmniQ
from ._worker_cmd import WorkerArgs, run_worker_command

__all__ = ["app", "main"]

app = typer.Typer(
    name="omniq",
    cls=OmniQGroup,
    help="OmniQ task queue: run workers, enqueue and inspect tasks.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,  # locals may hold URLs with passwords
)
console = Console()

EventsOpt = Annotated[
    str | None, typer.Option("--events-url", help="Event store URL (default: OMNIQ_EVENT_*).")
]


def _installed_versions() -> list[tuple[str, str]]:
    """Every installed ``omniq``/``omniq-*`` distribution and its version, by name.

    Each OmniQ distribution is released on its own, so a bug report needs all of them.
    """
    found: dict[str, str] = {}
    for dist in distributions():
        name = re.sub(r"[-_.]+", "-", dist.metadata["Name"] or "").lower()
        if name == "omniq" or name.startswith("omniq-"):
            found.setdefault(name, dist.version)  # the first on sys.path is the one imported
    return sorted(found.items())


def _show_version(value: bool) -> None:
    if value:
        for name, installed in _installed_versions():
            typer.echo(f"{name} {installed}")
        typer.echo(f"Python {platform.python_version()} ({platform.python_implementation()})")
        raise typer.Exit


@app.callback()
def _root(
    ctx: typer.Context,
    *,
    debug: Annotated[
        bool, typer.Option("--debug", help="Show the traceback of an error, not one line.")
    ] = False,
    _version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_show_version, is_eager=True, help="Show the version and exit."
        ),
    ] = False,
) -> None:
    """OmniQ task queue: run workers, enqueue and inspect tasks."""
    ctx.find_root().meta[DEBUG_KEY] = debug


class _RichOutput:
    """``omniq worker``'s output through rich: the banner's lead in bold, and a
    transient progress bar while a burst worker drains."""

    def banner(self, lead: str, rest: str) -> None:
        console.print(f"[bold]{escape(lead)}[/]{escape(rest)}", markup=True, highlight=False)

    def line(self, text: str) -> None:
        console.print(text)

    def draining(self) -> AbstractContextManager[object]:
        progress = Progress(
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            console=console,
            transient=True,
        )
        progress.add_task("draining", total=None)
        return progress


@app.command()
def worker(
    *,
    queues: Annotated[
        list[str] | None, typer.Option("--queue", "-q", help="Queue(s) to serve.")
    ] = None,
    concurrency: Annotated[
        int | None, typer.Option("--concurrency", "-c", help="Tasks run at once (>= 1).")
    ] = None,
    worker_type: Annotated[
        str | None, typer.Option("--worker-type", "-w", help="async, thread, process or gevent")
    ] = None,
    burst: Annotated[bool, typer.Option("--burst", help="Exit when nothing is due.")] = False,
    app_spec: Annotated[
        str | None,
        typer.Option("--app", help="module:attr of your OmniQ instance (from this folder)."),
    ] = None,
    allow: Annotated[
        list[str] | None,
        typer.Option(
            "--allow",
            help="Only run task functions from these modules (and their submodules); "
            "repeat or separate with commas. Default: OMNIQ_ALLOWED_MODULES, else any.",
        ),
    ] = None,
    scheduler: Annotated[bool, typer.Option("--scheduler/--no-scheduler")] = True,
    processes: Annotated[
        int,
        typer.Option(
            "--processes",
            "-p",
            help="Worker processes to run under a supervisor that restarts one that dies "
            "(each runs --concurrency tasks at once).",
        ),
    ] = 1,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            "--metrics-port",
            help="Serve Prometheus metrics on this port (the metrics extra); with "
            "--processes, one endpoint for all the worker processes.",
        ),
    ] = None,
    metrics_host: Annotated[
        str, typer.Option("--metrics-host", help="Address the metrics endpoint binds to.")
    ] = "127.0.0.1",
    url: UrlOpt = None,
    store_wait: Annotated[
        float,
        typer.Option(
            "--store-wait",
            help="Seconds to keep trying while the stores are unreachable at start "
            "(0: fail at once).",
        ),
    ] = 30.0,
) -> None:
    """Run a worker until SIGTERM/SIGINT (or, with --burst, until the queue is drained)."""
    # The console script runs this command without Typer (omniq.core._entry parses the
    # same options): keep the two option lists in step.
    args = WorkerArgs(
        queues=queues,
        concurrency=concurrency,
        worker_type=worker_type,
        burst=burst,
        app_spec=app_spec,
        allow=allow,
        scheduler=scheduler,
        processes=processes,
        metrics_port=metrics_port,
        metrics_host=metrics_host,
        url=url,
        store_wait=store_wait,
    )
    run_worker_command(args, _RichOutput())


def _parse_arg(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


@app.command()
def enqueue(
    func: Annotated[str, typer.Argument(help="module:function")],
    args: Annotated[
        list[str] | None, typer.Argument(help="Arguments (JSON or plain strings).")
    ] = None,
    *,
    queue: Annotated[str | None, typer.Option("--queue", "-q")] = None,
    delay: Annotated[float | None, typer.Option("--delay")] = None,
    max_retries: Annotated[int | None, typer.Option("--max-retries")] = None,
    key: Annotated[str | None, typer.Option("--key")] = None,
    url: UrlOpt = None,
) -> None:
    """Enqueue module:function with arguments; prints the task id."""
    with open_oq(url) as oq:
        task = oq.enqueue_sync(
            func,
            tuple(_parse_arg(a) for a in args or []),
            queue=queue,
            delay=delay,
            max_retries=max_retries,
            key=key,
        )
    console.print(task.id, highlight=False)


def _status_table(counts: dict[tuple[str, TaskStatus], int]) -> Table:
    table = Table(title="tasks by queue and state")
    table.add_column("queue")
    for st in TaskStatus:
        table.add_column(st.value, justify="right")
    for q in sorted({q for q, _ in counts}):
        table.add_row(q, *(str(counts.get((q, st), 0)) for st in TaskStatus))
    return table


@app.command()
def status(
    task_id: Annotated[
        str | None, typer.Argument(help="One task: its state and last progress.")
    ] = None,
    watch: Annotated[bool, typer.Option("--watch", help="Show a progress bar until done.")] = False,
    url: UrlOpt = None,
) -> None:
    """Task counts by queue and state, or one task's state and progress."""
    with open_oq(url) as oq:
        if task_id is not None:
            _task_status(oq, task_id)
            return
        counts = oq.counts_sync()
        console.print(_status_table(counts))
        if not watch:
            return
        with Progress(
            TextColumn("finished"), BarColumn(), MofNCompleteColumn(), console=console
        ) as progress:
            bar = progress.add_task("finished", total=sum(counts.values()))
            while True:
                counts = oq.counts_sync()
                total = sum(counts.values())
                done = sum(n for (_, st), n in counts.items() if st.is_terminal)
                progress.update(bar, total=total, completed=done)
                if done >= total:
                    break
                time.sleep(0.5)


def _task_status(oq: OmniQ, task_id: str) -> None:
    task = oq.get_task_sync(task_id)
    if task is None:
        console.print("unknown task")
        raise typer.Exit(1)
    table = Table(show_header=False)
    table.add_row("status", task.status.value)
    table.add_row("queue", task.queue)
    table.add_row("attempt", str(task.attempt))
    p = oq.get_progress_sync(task_id)
    if p is not None:
        shown = f"{p.done:g}" if p.total is None else f"{p.done:g}/{p.total:g}"
        if p.fraction is not None:
            shown += f" ({p.fraction:.0%})"
        table.add_row("progress", shown)
        if p.message:
            table.add_row("message", p.message)
        table.add_row("updated", f"{max(0.0, time.time() - p.updated_at):.1f}s ago")
    console.print(table)


@app.command()
def result(
    task_id: str,
    wait: Annotated[float | None, typer.Option("--wait", help="Wait up to N seconds.")] = None,
    url: UrlOpt = None,
) -> None:
    """Show a task's result."""
    with open_oq(url) as oq:
        r = oq.get_result_sync(task_id, wait=wait is not None, timeout=wait)
        if r is None:
            task = oq.get_task_sync(task_id)
            state = task.status.value if task else "unknown task"
            console.print(f"no result yet ({state})")
            raise typer.Exit(1)
    table = Table(show_header=False)
    table.add_row("status", r.status.value)
    table.add_row("value", repr(r.value))
    if r.error:
        table.add_row("error", f"{r.error.type}: {r.error.message}")
    table.add_row("attempts", str(r.attempts))
    if r.duration is not None:
        table.add_row("duration", f"{r.duration:.3f}s")
    table.add_row("worker", r.worker_id or "")
    console.print(table)


@app.command()
def cancel(task_id: str, url: UrlOpt = None) -> None:
    """Cancel a task that has not finished."""
    with open_oq(url) as oq:
        ok = oq.cancel_sync(task_id)
    console.print("cancelled" if ok else "not cancelled (unknown or already finished)")
    if not ok:
        raise typer.Exit(1)


@app.command()
def events(task_id: str, url: UrlOpt = None, events_url: EventsOpt = None) -> None:
    """A task's event trail."""
    with open_oq(url, events_url) as oq:
        evs = oq.get_events_sync(task_id)
    table = Table(title=f"events of {task_id}")
    for col in ("time", "event", "worker", "detail"):
        table.add_column(col)
    for e in evs:
        detail = ", ".join(f"{k}={v}" for k, v in e.metadata.items() if k != "func")
        table.add_row(
            to_datetime(e.timestamp).strftime("%H:%M:%S.%f")[:-3],
            e.type.value,
            e.worker_id or "",
            detail,
        )
    console.print(table)


def _register_extras() -> None:
    from ._dlq_cli import register as register_dlq
    from ._schedule_cli import register as register_schedules
    from ._workers_cli import register as register_workers

    register_schedules(app, open_oq)
    register_dlq(app, open_oq)
    importlib.import_module("omniq.core._queue_cli").register(app, open_oq)
    importlib.import_module("omniq.core._limits_cli").register(app, open_oq)
    register_workers(app, open_oq)


_PLUGIN_GROUP = "omniq.cli"
"""Entry-point group of command-line plugins: each names a callable that takes the
Typer ``app`` and adds its commands (``omniq web`` comes from omniq-web this way), so
distributions above omniq-core extend the ``omniq`` command without core importing them."""


def _load_plugins() -> None:
    from importlib.metadata import entry_points

    for ep in entry_points(group=_PLUGIN_GROUP):
        try:
            ep.load()(app)
        except Exception as exc:  # one broken plugin must not take the command down
            print(f"omniq: command plugin {ep.name!r} not loaded: {exc}", file=sys.stderr)


def _runs_worker(argv: list[str]) -> bool:
    """Whether this process is the ``omniq worker`` command: it needs no plugin commands,
    and loading them (the dashboard's web stack) would only add to a worker's memory."""
    if not argv or os.path.basename(argv[0]) not in ("omniq", "omniq.exe", "cli.py"):
        return False
    command = next((a for a in argv[1:] if not a.startswith("-")), None)
    return command == "worker"


_register_extras()
if not _runs_worker(sys.argv):
    _load_plugins()


def main() -> None:
    """Run the Typer application on ``sys.argv`` (every command, ``worker`` included)."""
    sys.exit(app())


if __name__ == "__main__":
    main()
