"""A worker process started by the supervisor (``run_worker(processes=N)``).

Run as ``python -m omniq.core._supervisor_child``: reads one JSON ``ChildSpec`` line on
stdin, adopts the parent's ``sys.path``, re-creates the OmniQ (from the ``--app`` it
was given, else from the URLs and settings) and runs an ordinary single-process worker
until SIGTERM/SIGINT (or, in burst mode, until nothing is due). The user's ``__main__``
is never imported here. When stdin closes (the supervisor is gone) the worker drains as
on SIGTERM. The counters of the run are written to the spec's ``stats_dir``.

Exit codes: 0 after a normal stop, 2 when the configuration is wrong (a ``ConfigError``
and the other user errors of the command line, reported in one line on stderr), 1 for
anything else (with its traceback).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

from omniq.models import MissingExtraError, OmniQError

from ._supervisor import CHILD_CONFIG_ERROR, ChildSpec

__all__ = ["main"]


def _start_os_thread(fn: Callable[[], None]) -> None:
    """Start ``fn`` in a real OS thread, even when gevent has patched threading."""
    if "gevent.monkey" in sys.modules:
        from gevent import monkey

        if monkey.is_module_patched("threading"):
            start = monkey.get_original("_thread", "start_new_thread")
            start(fn, ())
            return
    threading.Thread(target=fn, name="omniq-supervisor-pipe", daemon=True).start()


def _stop_when_orphaned() -> None:
    """Drain like on SIGTERM once stdin reaches EOF (the supervisor has gone away)."""
    # os.read on the descriptor, not sys.stdin: a daemon thread blocked inside a buffered
    # reader holds its lock and makes interpreter shutdown abort.
    with contextlib.suppress(OSError):
        while os.read(0, 4096):
            pass
    os.kill(os.getpid(), signal.SIGTERM)


def _run(spec: ChildSpec) -> Any:
    opts = dict(spec.options)
    if opts.get("worker_type") == "gevent":  # patch before the app and its drivers load
        try:
            from gevent import monkey
        except ImportError as exc:
            raise MissingExtraError(
                "worker_type gevent needs gevent: pip install 'omniq[gevent]' "
                "(or 'omniq-workers[gevent]')"
            ) from exc
        monkey.patch_all()
    _start_os_thread(_stop_when_orphaned)
    if opts.get("worker_id"):
        opts["worker_id"] = f"{opts['worker_id']}-{spec.slot}"

    from ._cli_base import connect, load_app
    from ._facade import OmniQ
    from ._worker_cmd import run_worker_with_scheduler

    if spec.app is not None:
        oq = connect(load_app(spec.app))
    else:
        oq = connect(
            OmniQ(
                spec.task_queue,
                spec.result_storage,
                spec.event_storage,
                settings=spec.settings,
            )
        )
    with oq:
        if spec.burst:
            return oq.run_worker_sync(burst=True, **opts)
        return run_worker_with_scheduler(oq, scheduler=spec.scheduler, **opts)


def _read_line(fd: int) -> bytes:
    """One line from ``fd``, read unbuffered so nothing after it is consumed."""
    out = bytearray()
    while not out.endswith(b"\n"):
        chunk = os.read(fd, 1)
        if not chunk:
            break
        out += chunk
    return bytes(out)


def main() -> None:
    """Entry point of a supervised worker process."""
    line = _read_line(0)
    if not line.strip():
        return  # the supervisor went away before sending the spec
    spec = msgspec.json.decode(line, type=ChildSpec)
    sys.path[:] = spec.sys_path
    from omniq.models import redact_text

    from ._cli_base import USER_ERRORS

    try:
        stats = _run(spec)
    except OmniQError as exc:
        if not isinstance(exc, USER_ERRORS):
            raise
        text = " ".join((str(exc) or type(exc).__name__).split())
        print(f"omniq worker process {spec.slot}: error: {redact_text(text)}", file=sys.stderr)
        sys.exit(CHILD_CONFIG_ERROR)
    except Exception:
        print(
            redact_text(f"omniq worker process {spec.slot}: {traceback.format_exc()}"),
            file=sys.stderr,
        )
        sys.exit(1)
    if spec.stats_dir:
        path = Path(spec.stats_dir) / f"{spec.slot}-{os.getpid()}.json"
        with contextlib.suppress(OSError):  # the supervisor is gone, its directory too
            path.write_bytes(msgspec.json.encode(stats))


if __name__ == "__main__":
    main()
