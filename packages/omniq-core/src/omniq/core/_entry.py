"""Entry point of the ``omniq`` console script.

``omniq worker ...`` is the command that stays running, so it parses its own options
here and runs without importing Typer, rich or the other commands: a worker process
carries only what working needs. Anything this parser does not take as it is (``--help``,
``--version``, another command, an unknown option or a value that is not a number where
one is expected, shell completion) goes to the Typer application (``omniq.core.cli``),
which prints the help or the usage error exactly as for every other command.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from typing import Any

__all__ = ["main", "parse_worker_argv"]

# option -> (WorkerArgs field, kind); the same names as the Typer command ``cli.worker``.
_OPTIONS: dict[str, tuple[str, str]] = {
    "--queue": ("queues", "list"),
    "-q": ("queues", "list"),
    "--concurrency": ("concurrency", "int"),
    "-c": ("concurrency", "int"),
    "--worker-type": ("worker_type", "str"),
    "-w": ("worker_type", "str"),
    "--burst": ("burst", "on"),
    "--app": ("app_spec", "str"),
    "--allow": ("allow", "list"),
    "--scheduler": ("scheduler", "on"),
    "--no-scheduler": ("scheduler", "off"),
    "--processes": ("processes", "int"),
    "-p": ("processes", "int"),
    "--metrics-port": ("metrics_port", "int"),
    "--metrics-host": ("metrics_host", "str"),
    "--url": ("url", "str"),
    "-u": ("url", "str"),
    "--store-wait": ("store_wait", "float"),
}


def _split(arg: str) -> tuple[str, str | None]:
    """``--name=value`` / ``-xvalue`` -> (option, attached value); else (arg, None)."""
    if arg.startswith("--"):
        name, eq, value = arg.partition("=")
        return (name, value) if eq else (arg, None)
    if len(arg) > 2 and arg[:2] in _OPTIONS:
        return arg[:2], arg[2:]
    return arg, None


def parse_worker_argv(argv: list[str]) -> tuple[bool, dict[str, Any]] | None:
    """``[--debug] worker OPTIONS`` -> (debug, the options as ``WorkerArgs`` fields), or
    None for anything else (left to the Typer application)."""
    debug = False
    i = 0
    while i < len(argv) and argv[i] == "--debug":
        debug, i = True, i + 1
    if i >= len(argv) or argv[i] != "worker":
        return None
    fields: dict[str, Any] = {}
    rest = argv[i + 1 :]
    j = 0
    while j < len(rest):
        name, value = _split(rest[j])
        j += 1
        if name not in _OPTIONS:
            return None
        dest, kind = _OPTIONS[name]
        if kind in {"on", "off"}:
            if value is not None:
                return None
            fields[dest] = kind == "on"
            continue
        if value is None:
            if j >= len(rest):
                return None
            value, j = rest[j], j + 1
        if kind == "list":
            fields.setdefault(dest, []).append(value)
        elif kind in {"int", "float"}:
            try:
                fields[dest] = int(value) if kind == "int" else float(value)
            except ValueError:
                return None
        else:
            fields[dest] = value
    return debug, fields


def _run_lean(debug: bool, fields: dict[str, Any]) -> int:
    from omniq.models import OmniQError

    from ._cli_base import error_lines
    from ._worker_cmd import PlainOutput, WorkerArgs, run_worker_command

    try:
        run_worker_command(WorkerArgs(**fields), PlainOutput())
    except OmniQError as exc:
        text, code = error_lines(exc, debug=debug)
        print(text, file=sys.stderr)
        return code
    except KeyboardInterrupt:  # as click reports it
        print("\nAborted!", file=sys.stderr)
        return 1
    return 0


def main() -> None:
    """Entry point of the ``omniq`` console script."""
    # _OMNIQ_COMPLETE: the shell asks Click for completions.
    parsed = None if "_OMNIQ_COMPLETE" in os.environ else parse_worker_argv(sys.argv[1:])
    if parsed is None:
        from .cli import main as typer_main

        typer_main()
        return
    if parsed[1].get("worker_type") == "gevent":
        from ._gevent_boot import boot_command, patched

        # anyio and the drivers are loaded: patch in a fresh process. Without gevent
        # there is nothing to patch: the worker reports the missing extra itself.
        if not patched() and importlib.util.find_spec("gevent") is not None:
            cmd = boot_command("omniq.core._entry", "main", sys.argv[1:])
            os.execv(cmd[0], cmd)
    sys.exit(_run_lean(*parsed))


if __name__ == "__main__":
    main()
