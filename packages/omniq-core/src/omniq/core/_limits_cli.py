"""``omniq limits``: each flow-limit key's running count and remaining rate budget,
registered onto the ``omniq`` Typer app with ``register(app)``."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from ._cli_common import UrlOpt, open_oq
from ._facade import OmniQ

__all__ = ["register"]


def _opt(v: object) -> str:
    return "-" if v is None else str(v)


def register(app: typer.Typer, open_oq: Callable[..., OmniQ] = open_oq) -> None:
    """Add the ``limits`` command to ``app``."""

    @app.command("limits")
    def limits_cmd(
        as_json: Annotated[bool, typer.Option("--json")] = False,
        url: UrlOpt = None,
    ) -> None:
        """One row per limit key: running tasks / max_concurrency, rate limit and the
        starts its current window still allows."""
        with open_oq(url) as oq:
            limits = oq.list_limits_sync()
        if as_json:
            typer.echo(
                json.dumps(
                    [
                        {
                            "key": i.key,
                            "running": i.running,
                            "max_concurrency": i.max_concurrency,
                            "rate_limit": i.rate_limit,
                            "remaining": i.remaining,
                        }
                        for i in limits
                    ]
                )
            )
            return
        table = Table("limit key", "running", "max_concurrency", "rate_limit", "remaining")
        for i in limits:
            table.add_row(
                i.key,
                str(i.running),
                _opt(i.max_concurrency),
                _opt(i.rate_limit),
                _opt(i.remaining),
            )
        Console().print(table)
