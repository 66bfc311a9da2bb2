"""What every ``omniq`` sub-command shares: opening the stores, reporting a user error in
one line (a traceback only with ``omniq --debug``), and keeping passwords out of output."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from omniq.models import OmniQError

from ._cli_base import USER_ERRORS, connect, error_lines, open_oq

__all__ = ["USER_ERRORS", "OmniQGroup", "UrlOpt", "connect", "open_oq"]

DEBUG_KEY = "omniq.debug"

UrlOpt = Annotated[
    str | None,
    typer.Option("--url", "-u", help="Task store URL (default: the OMNIQ_* environment)."),
]


def _debug(ctx: Any) -> bool:
    return bool(ctx.find_root().meta.get(DEBUG_KEY, False))


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
            text, code = error_lines(exc, debug=_debug(ctx))
            typer.echo(text, err=True)
            raise typer.Exit(code) from None
