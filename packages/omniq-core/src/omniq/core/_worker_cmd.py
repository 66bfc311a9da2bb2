"""The ``omniq worker`` command itself, without Typer or rich: the Typer command
(``cli.worker``) and the lean entry point (``_entry``) both call ``run_worker_command``
and differ only in how they print (``WorkerOutput``)."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from omniq.models import ConfigError, redact_url

from ._cli_base import allowed_modules, connect, cwd_on_path, gevent_patch, load_app, open_oq

if TYPE_CHECKING:
    from omniq.workers import PoolStats

    from ._facade import OmniQ

__all__ = [
    "PlainOutput",
    "WorkerArgs",
    "WorkerOutput",
    "run_worker_command",
    "run_worker_with_scheduler",
]


@dataclass
class WorkerArgs:
    """The options of ``omniq worker``, with the command's defaults."""

    queues: list[str] | None = None
    concurrency: int | None = None
    worker_type: str | None = None
    burst: bool = False
    app_spec: str | None = None
    allow: list[str] | None = None
    scheduler: bool = True
    processes: int = 1
    metrics_port: int | None = None
    metrics_host: str = "127.0.0.1"
    url: str | None = None
    store_wait: float = 30.0
    """Seconds to keep trying to open the stores when they are unreachable at start."""


class WorkerOutput(Protocol):
    """How the command prints: a banner whose ``lead`` is emphasised, plain lines, and
    what is shown while a burst worker drains."""

    def banner(self, lead: str, rest: str) -> None: ...

    def line(self, text: str) -> None: ...

    def draining(self) -> AbstractContextManager[object]: ...


class PlainOutput:
    """Print to stdout; the banner's lead in bold on a terminal (unless ``NO_COLOR``)."""

    def __init__(self) -> None:
        tty = sys.stdout.isatty() and os.environ.get("TERM") != "dumb"
        self._bold = tty and not os.environ.get("NO_COLOR")

    def banner(self, lead: str, rest: str) -> None:
        self.line(f"\x1b[1m{lead}\x1b[0m{rest}" if self._bold else lead + rest)

    def line(self, text: str) -> None:
        print(text, flush=True)

    def draining(self) -> AbstractContextManager[object]:
        return contextlib.nullcontext()


def run_worker_with_scheduler(
    oq: OmniQ, *, scheduler: bool = True, **worker_options: Any
) -> PoolStats:
    """Run a worker in the foreground, with a scheduler in the background unless
    ``scheduler`` is False (``omniq worker --no-scheduler``)."""
    if not scheduler:
        return oq.run_worker_sync(**worker_options)
    with oq.scheduler():
        return oq.run_worker_sync(**worker_options)


def run_worker_command(args: WorkerArgs, out: WorkerOutput) -> None:
    """Run a worker until SIGTERM/SIGINT (or, with ``burst``, until the queue is drained)."""
    if args.concurrency is not None and args.concurrency < 1:
        raise ConfigError("--concurrency", args.concurrency, "an integer >= 1")
    if args.processes < 1:
        raise ConfigError("--processes", args.processes, "an integer >= 1")
    if not args.store_wait >= 0:  # also refuses NaN
        raise ConfigError("--store-wait", args.store_wait, "a number of seconds >= 0")
    allowed = allowed_modules(args.allow)
    shown_allow = f" allow={list(allowed)}" if allowed is not None else ""
    if args.processes > 1:
        _run_processes(args, allowed, out, shown_allow)
        return
    options: dict[str, Any] = {}
    if args.metrics_port is not None:
        options.update(metrics_port=args.metrics_port, metrics_host=args.metrics_host)
    if allowed is not None:
        options["allowed_modules"] = allowed
    if args.worker_type == "gevent":  # patch before the app (and its drivers) are imported
        gevent_patch("--worker-type")
    cwd_on_path()  # task functions are imported from here too, as with --app
    oq = _open_stores(args)
    with oq:
        out.banner(
            "omniq worker",
            f" on {redact_url(oq.task_queue_url)} queues={args.queues or ['default']}"
            + shown_allow,
        )
        run = dict(queues=args.queues, concurrency=args.concurrency, **options)
        if args.burst:
            with out.draining():
                stats = oq.run_worker_sync(worker_type=args.worker_type, burst=True, **run)
        else:
            stats = run_worker_with_scheduler(
                oq, scheduler=args.scheduler, worker_type=args.worker_type, **run
            )
    out.line(
        f"done: {stats.succeeded} succeeded, {stats.failed} failed, {stats.expired} expired, "
        f"{stats.released} handed back"
    )


def _open_stores(args: WorkerArgs) -> OmniQ:
    """The open OmniQ of ``--app`` or ``--url``; while its stores are unreachable, tried
    again for ``--store-wait`` seconds, each failure told on stderr (a worker started
    before its server, as a container platform may start them)."""
    if args.app_spec:
        return connect(load_app(args.app_spec), wait=args.store_wait, notice=_to_stderr)
    return open_oq(args.url, wait=args.store_wait, notice=_to_stderr)


def _to_stderr(text: str) -> None:
    print(f"omniq worker: {text}", file=sys.stderr, flush=True)


def _run_processes(
    args: WorkerArgs, allowed: tuple[str, ...] | None, out: WorkerOutput, shown_allow: str
) -> None:
    """``omniq worker --processes N``: a supervisor of N worker processes (each loads
    ``--app`` itself, or re-creates the OmniQ from the URL and settings)."""
    import logging

    from ._supervisor import supervisor_for

    opts: dict[str, Any] = dict(
        queues=args.queues, concurrency=args.concurrency, worker_type=args.worker_type
    )
    if args.metrics_port is not None:
        opts.update(metrics_port=args.metrics_port, metrics_host=args.metrics_host)
    if allowed is not None:
        opts["allowed_modules"] = list(allowed)
    cwd_on_path()
    oq = _open_stores(args)
    log = logging.getLogger("omniq.supervisor")
    with _restarts_shown(log), oq:
        sup = supervisor_for(
            oq, opts, args.processes, burst=args.burst, app=args.app_spec, scheduler=args.scheduler
        )
        out.banner(
            "omniq worker",
            f" on {redact_url(oq.task_queue_url)} queues={opts['queues'] or ['default']} "
            f"processes={args.processes}" + shown_allow,
        )
        stats = sup.run()
    out.line(
        f"done: {stats.succeeded} succeeded, {stats.failed} failed, {stats.expired} expired, "
        f"{stats.released} handed back ({args.processes} processes, {sup.restarts} restarts)"
    )


@contextlib.contextmanager
def _restarts_shown(log: Any) -> Iterator[None]:
    """Log the supervisor's restarts on stderr unless logging is configured already."""
    import logging

    handler: logging.Handler | None = None
    if not log.handlers and not logging.getLogger().handlers:  # restarts must be seen
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        log.addHandler(handler)
    try:
        yield
    finally:
        if handler is not None:
            log.removeHandler(handler)
