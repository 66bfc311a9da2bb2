"""The ``omniq`` command line: worker, enqueue, status, result, cancel, events (plus the
scheduling commands of ``_schedule_cli``)."""

from __future__ import annotations

import importlib
import json
import sys
import time
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from omniq.models import TaskStatus, to_datetime

from ._facade import OmniQ

__all__ = ["app", "main"]

app = typer.Typer(
    name="omniq",
    help="OmniQ task queue: run workers, enqueue and inspect tasks.",
    no_args_is_help=True,
)
console = Console()

UrlOpt = Annotated[
    str | None,
    typer.Option("--url", "-u", help="Task store URL (default: the OMNIQ_* environment)."),
]
EventsOpt = Annotated[
    str | None, typer.Option("--events-url", help="Event store URL (default: OMNIQ_EVENT_*).")
]


def _open(url: str | None, events_url: str | None = None) -> OmniQ:
    if events_url:
        return OmniQ(url, event_storage=events_url)
    return OmniQ(url) if url else OmniQ()


def _load_app(spec: str) -> OmniQ:
    module, _, attr = spec.partition(":")
    obj: Any = importlib.import_module(module)
    for part in (attr or "oq").split("."):
        obj = getattr(obj, part)
    if not isinstance(obj, OmniQ):
        raise typer.BadParameter(f"{spec} is a {type(obj).__name__}, not an OmniQ")
    return obj


@app.command()
def worker(
    *,
    queues: Annotated[
        list[str] | None, typer.Option("--queue", "-q", help="Queue(s) to serve.")
    ] = None,
    concurrency: Annotated[int | None, typer.Option("--concurrency", "-c")] = None,
    worker_type: Annotated[
        str | None, typer.Option("--worker-type", "-w", help="async, thread, process or gevent")
    ] = None,
    burst: Annotated[bool, typer.Option("--burst", help="Exit when nothing is due.")] = False,
    app_spec: Annotated[
        str | None, typer.Option("--app", help="module:attr of your OmniQ instance.")
    ] = None,
    scheduler: Annotated[bool, typer.Option("--scheduler/--no-scheduler")] = True,
    url: UrlOpt = None,
) -> None:
    """Run a worker until SIGTERM/SIGINT (or, with --burst, until the queue is drained)."""
    if worker_type == "gevent":  # patch before the app (and its drivers) are imported
        from gevent import monkey

        monkey.patch_all()
    oq = _load_app(app_spec) if app_spec else _open(url)
    from ._schedule_cli import run_worker_with_scheduler

    with oq:
        console.print(
            f"[bold]omniq worker[/] on {oq.task_queue_url} queues={queues or ['default']}"
        )
        if burst:
            with Progress(
                TextColumn("[progress.description]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                console=console,
                transient=True,
            ) as progress:
                progress.add_task("draining", total=None)
                stats = oq.run_worker_sync(
                    queues=queues, concurrency=concurrency, worker_type=worker_type, burst=True
                )
        else:
            stats = run_worker_with_scheduler(
                oq,
                scheduler=scheduler,
                queues=queues,
                concurrency=concurrency,
                worker_type=worker_type,
            )
    console.print(
        f"done: {stats.succeeded} succeeded, {stats.failed} failed, {stats.expired} expired, "
        f"{stats.released} handed back"
    )


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
    with _open(url) as oq:
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
    watch: Annotated[bool, typer.Option("--watch", help="Show a progress bar until done.")] = False,
    url: UrlOpt = None,
) -> None:
    """Task counts by queue and state."""
    with _open(url) as oq:
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


@app.command()
def result(
    task_id: str,
    wait: Annotated[float | None, typer.Option("--wait", help="Wait up to N seconds.")] = None,
    url: UrlOpt = None,
) -> None:
    """Show a task's result."""
    with _open(url) as oq:
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
    with _open(url) as oq:
        ok = oq.cancel_sync(task_id)
    console.print("cancelled" if ok else "not cancelled (unknown or already finished)")
    if not ok:
        raise typer.Exit(1)


@app.command()
def events(task_id: str, url: UrlOpt = None, events_url: EventsOpt = None) -> None:
    """A task's event trail."""
    with _open(url, events_url) as oq:
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
    try:
        from ._schedule_cli import register
    except ImportError:  # pragma: no cover
        return
    register(app)
    from ._dlq_cli import register as register_dlq

    register_dlq(app)


_register_extras()


def main() -> None:
    """Entry point of the ``omniq`` script."""
    sys.exit(app())


if __name__ == "__main__":
    main()
