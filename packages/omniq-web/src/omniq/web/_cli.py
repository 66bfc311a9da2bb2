"""``omniq web``: added to omniq-core's command line through the ``omniq.cli`` entry
point group."""

from __future__ import annotations

from typing import Annotated

import typer

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    """Add the ``web`` command to the ``omniq`` Typer app."""

    @app.command()
    def web(
        *,
        host: Annotated[
            str, typer.Option("--host", help="Address to bind (default: this machine only).")
        ] = "127.0.0.1",
        port: Annotated[int, typer.Option("--port", help="Port to listen on.")] = 8080,
        url: Annotated[
            str | None, typer.Option("--url", help="Task store URL (default: OMNIQ_* settings).")
        ] = None,
        events_url: Annotated[
            str | None, typer.Option("--events-url", help="Event store URL (event trails).")
        ] = None,
        read_only: Annotated[
            bool, typer.Option("--read-only", help="Show everything, allow no action.")
        ] = False,
    ) -> None:
        """Serve the dashboard (queues, tasks, dead letters, schedules, workers, /metrics)."""
        import uvicorn

        from ._app import create_app

        uvicorn.run(
            create_app(url, events_url=events_url, read_only=read_only),
            host=host,
            port=port,
            log_level="warning",
        )
