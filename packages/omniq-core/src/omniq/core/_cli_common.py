"""What every ``omniq`` sub-command shares: opening the stores, reporting a user error in
one line (a traceback only with ``omniq --debug``), and keeping passwords out of output."""

from __future__ import annotations

import traceback
from typing import Annotated, Any, NoReturn

import typer
from typer.core import TyperGroup

from omniq.models import (
    ConfigError,
    DependencyError,
    InvalidTaskError,
    MissingExtraError,
    OmniQError,
    ScheduleError,
    SerializationError,
    UnknownBackendError,
    redact_text,
    redact_url,
)

from ._facade import OmniQ

__all__ = ["OmniQGroup", "UrlOpt", "connect", "open_oq"]

DEBUG_KEY = "omniq.debug"

UrlOpt = Annotated[
    str | None,
    typer.Option("--url", "-u", help="Task store URL (default: the OMNIQ_* environment)."),
]

# Errors caused by what the operator typed or configured: exit code 2, like a usage error.
USER_ERRORS: tuple[type[OmniQError], ...] = (
    ConfigError,
    DependencyError,
    InvalidTaskError,
    MissingExtraError,
    ScheduleError,
    SerializationError,
    UnknownBackendError,
)

_STORE_HINT = "check --url or the OMNIQ_*_URL / OMNIQ_*_TYPE variables"


def _debug(ctx: Any) -> bool:
    return bool(ctx.find_root().meta.get(DEBUG_KEY, False))


def _one_line(text: str) -> str:
    return redact_text(" ".join(text.split()))


def _describe(exc: OmniQError) -> str:
    text = str(exc) or type(exc).__name__
    if isinstance(exc, UnknownBackendError):
        return f"{text}; {_STORE_HINT}"
    if isinstance(exc, ConfigError | MissingExtraError | InvalidTaskError | ScheduleError):
        return text  # these messages name the setting/extra/option and what is accepted
    if isinstance(exc, ConnectionError):  # BackendUnavailableError
        return f"{text}; is the server running? {_STORE_HINT}"
    return f"{type(exc).__name__}: {text}"


def _report(ctx: Any, line: str, code: int, exc: BaseException) -> NoReturn:
    if _debug(ctx):
        typer.echo(redact_text("".join(traceback.format_exception(exc))).rstrip(), err=True)
    else:
        line += " (omniq --debug ... shows the traceback)" if code != 2 else ""
    typer.echo(f"omniq: error: {_one_line(line)}", err=True)
    raise typer.Exit(code)


class OmniQGroup(TyperGroup):
    """The ``omniq`` command group: turns ``OmniQError`` into one line on stderr.

    User errors (the leaves about input or configuration, ``USER_ERRORS``; the commands
    raise ConfigError for a bad option) exit with 2, other ``OmniQError`` (an
    unreachable server, a store failure) with 1; ``omniq --debug`` adds the traceback.
    Anything else is a bug and keeps its traceback.
    """

    def invoke(self, ctx: Any) -> Any:  # a typer.Context (recent typer vendors its own click)
        try:
            return super().invoke(ctx)
        except OmniQError as exc:
            code = 2 if isinstance(exc, USER_ERRORS) else 1
            _report(ctx, _describe(exc), code, exc)


def connect(oq: OmniQ) -> OmniQ:
    """Open ``oq``'s stores now, so a store that cannot be opened is reported as such.

    A bad path (``OSError``) or a URL its driver cannot parse (``ValueError``) becomes a
    ConfigError naming the redacted URL (a one-line user error); ``OmniQError`` passes
    through. The returned instance is open: ``with connect(oq):`` closes it.
    """
    try:
        oq.open_sync()
    except OmniQError:
        oq.close_sync()
        raise
    except (OSError, ValueError) as exc:
        oq.close_sync()
        raise ConfigError(
            "task store URL",
            redact_url(oq.task_queue_url),
            "a path or URL that can be opened",
            redact_text(f"{type(exc).__name__}: {exc}; {_STORE_HINT}"),
        ) from exc
    return oq


def open_oq(url: str | None, events_url: str | None = None) -> OmniQ:
    """An open OmniQ on ``url`` (default: the ``OMNIQ_*`` environment)."""
    if events_url:
        return connect(OmniQ(url, event_storage=events_url))
    return connect(OmniQ(url) if url else OmniQ())
