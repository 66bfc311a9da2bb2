"""Multi-process workers: a supervisor that keeps N worker processes running.

``run_worker(processes=N)`` / ``omniq worker --processes N`` start N fresh interpreters
running OmniQ's own entry point (``python -m omniq.core._supervisor_child``), each an
ordinary single-process worker on the same stores, queues and options. The user's
``__main__`` is never imported in a child: a child re-creates the OmniQ from its URLs
and settings, or imports the ``--app module:attr`` the command line was given.

What the supervisor does:

- restarts a child that exits while the supervisor is not stopping (in burst mode, only
  one that failed: a child that exited 0 has drained its queues), after a delay that
  doubles with each quick death up to a cap, logging one line per restart; a child
  that dies ``CRASH_LIMIT`` times within ``CRASH_WINDOW`` seconds is reported as
  crash-looping (an error line per restart) and keeps backing off;
- on the first SIGTERM/SIGINT (or ``request_stop()``) passes SIGTERM on: each child
  stops claiming and gives its running tasks the shutdown grace; a child still alive
  after the grace (plus a margin) is killed;
- on a second signal (``request_stop(force=True)``) forces the stop: the children get
  a second SIGTERM (their forced stop: running tasks are cancelled and handed back)
  and are killed if still alive ``FORCE_KILL_AFTER`` seconds later;
- returns when every child has exited, with the children's counters summed;
- with ``metrics_port``, serves the children's Prometheus metrics as one set (see
  ``omniq.core._metrics``: a private multiprocess directory, exited children marked dead).

Children run in their own process group, so a Ctrl-C at the terminal reaches the
supervisor only (which passes it on once); a child whose supervisor disappears sees its
stdin pipe close and drains like on SIGTERM.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

import anyio
import anyio.to_thread
import msgspec

from omniq.config import Settings
from omniq.models import ConfigError
from omniq.workers import PoolStats

from ._gevent_boot import boot_command
from ._metrics import MultiprocessExporter

__all__ = [
    "CHILD_CONFIG_ERROR",
    "CRASH_LIMIT",
    "CRASH_WINDOW",
    "FORCE_KILL_AFTER",
    "ChildSpec",
    "Supervisor",
    "check_processes",
    "child_spec",
    "supervisor_for",
]

CHILD_MODULE = "omniq.core._supervisor_child"
CHILD_CONFIG_ERROR = 2
"""Exit code of a child that could not start because of its configuration (as the CLI's
user errors): the supervisor stops instead of restarting it."""

RESTART_DELAY = 0.5
"""Delay before the first restart of a child; doubled for each further quick death."""
RESTART_CAP = 30.0
"""Longest delay between restarts."""
CRASH_WINDOW = 60.0
"""Seconds over which deaths are counted for the crash-loop warning; a child that ran
longer than this before dying restarts after RESTART_DELAY again."""
CRASH_LIMIT = 5
"""Deaths within CRASH_WINDOW that make a child crash-looping."""
STOP_MARGIN = 10.0
"""Seconds past the shutdown grace a child gets to hand tasks back before it is killed."""
FORCE_KILL_AFTER = 3.0
"""Seconds a child gets after a forced stop before it is killed."""

_IN_PROCESS_SCHEMES = ("memory", "file+memory", "fsspec+memory")

_log = logging.getLogger("omniq.supervisor")


class ChildSpec(msgspec.Struct, kw_only=True):
    """Everything a child needs to become a worker, sent as one JSON line on its stdin
    (not its command line, so store passwords never show in ``ps``)."""

    sys_path: list[str]
    app: str | None = None
    """``module:attr`` to import the OmniQ from (the CLI's ``--app``)."""
    task_queue: str | None = None
    result_storage: str | None = None
    event_storage: str | None = None
    settings: Settings | None = None
    options: dict[str, Any] = msgspec.field(default_factory=dict)
    """Keyword arguments of ``run_worker_sync`` (queues, concurrency, pool options)."""
    burst: bool = False
    scheduler: bool = False
    """Run a scheduler beside the worker (given to the first child only)."""
    slot: int = 0
    stats_dir: str = ""
    """Where the child writes its PoolStats when it ends (``<slot>-<pid>.json``)."""


def check_processes(processes: int) -> int:
    """``processes`` as a validated count (>= 1)."""
    if isinstance(processes, bool) or not isinstance(processes, int) or processes < 1:
        raise ConfigError("processes", processes, "an integer >= 1")
    return processes


def _scheme(url: str) -> str:
    return url.partition("://")[0].lower() if "://" in url else ""


def child_spec(
    *,
    task_queue: str,
    result_storage: str | None,
    event_storage: str | None,
    settings: Settings,
    options: Mapping[str, Any],
    burst: bool,
    app: str | None = None,
    scheduler: bool = False,
) -> ChildSpec:
    """The spec of the children of one supervisor; refuses what other processes
    cannot share (an in-process store, options that are not plain data)."""
    if _scheme(task_queue) in _IN_PROCESS_SCHEMES:
        raise ConfigError(
            "processes",
            "> 1",
            "a task store other processes can open (sqlite, file, redis, postgres, nats)",
            f"{_scheme(task_queue)}:// lives inside one process",
        )
    opts = {k: v for k, v in options.items() if v is not None}
    try:
        msgspec.json.encode(opts)
    except (TypeError, msgspec.EncodeError) as exc:
        raise ConfigError(
            "run_worker options",
            sorted(opts),
            "plain data (str, numbers, lists) when processes > 1",
            str(exc),
        ) from exc
    return ChildSpec(
        sys_path=list(sys.path),
        app=app,
        task_queue=None if app else task_queue,
        result_storage=None if app else result_storage,
        event_storage=None if app else event_storage,
        settings=None if app else settings,
        options=opts,
        burst=burst,
        scheduler=scheduler,
    )


class _Slot:
    """One of the N places a child runs in, across its restarts."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.proc: subprocess.Popen[bytes] | None = None
        self.started = 0.0
        self.deaths: collections.deque[float] = collections.deque()
        self.streak = 0
        self.restart_at: float | None = None
        self.done = False


def _describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


class Supervisor:
    """Runs ``processes`` worker children from ``spec`` until they are all gone.

    ``grace`` is the children's shutdown grace (a child still alive ``grace +
    STOP_MARGIN`` seconds after a graceful stop is killed). ``run()`` blocks;
    ``request_stop()`` may be called from any thread.
    """

    def __init__(
        self,
        spec: ChildSpec,
        processes: int,
        *,
        grace: float,
        restart_delay: float = RESTART_DELAY,
        restart_cap: float = RESTART_CAP,
        crash_window: float = CRASH_WINDOW,
        crash_limit: int = CRASH_LIMIT,
        env: Mapping[str, str] | None = None,
        metrics: MultiprocessExporter | None = None,
    ) -> None:
        self.spec = spec
        self.metrics = metrics
        """Serves the children's metrics as one set (``metrics_port``), or None."""
        self._child_env: dict[str, str] | None = dict(env) if env is not None else None
        self.processes = check_processes(processes)
        self.grace = grace
        self.restart_delay = restart_delay
        self.restart_cap = restart_cap
        self.crash_window = crash_window
        self.crash_limit = crash_limit
        self.env = dict(env) if env is not None else None
        self.restarts = 0
        """Children restarted so far (for tests and health checks)."""
        self._cond = threading.Condition()  # an RLock: signal handlers take it too
        self._stop_requests = 0
        self._force_requested = False
        self._stop_level = 0  # 0 running, 1 graceful stop sent, 2 forced stop sent
        self._kill_at: float | None = None
        self._slots = [_Slot(i) for i in range(self.processes)]
        self._error: ConfigError | None = None

    # -- control ---------------------------------------------------------------------------

    def request_stop(self, *, force: bool = False) -> None:
        """Ask for a graceful stop (a second request, or ``force``, forces it)."""
        with self._cond:
            self._stop_requests += 1
            self._force_requested = self._force_requested or force
            self._cond.notify_all()

    def pids(self) -> list[int]:
        """Pids of the children alive now."""
        with self._cond:
            return [s.proc.pid for s in self._slots if s.proc is not None and s.proc.poll() is None]

    # -- running ---------------------------------------------------------------------------

    def run(self, *, handle_signals: bool = True) -> PoolStats:
        """Start the children and supervise them until all have exited; returns their
        counters summed. With ``handle_signals`` (main thread only) SIGTERM/SIGINT stop
        gracefully, a second one forces the stop. Raises ConfigError when a child could
        not start because of its configuration."""
        restore: Callable[[], None] | None = None
        if handle_signals and threading.current_thread() is threading.main_thread():
            restore = self._install_signal_handlers()
        try:
            with tempfile.TemporaryDirectory(prefix="omniq-supervisor-") as stats_dir:
                self._stats_dir = stats_dir
                if self.metrics is not None:
                    extra = self.metrics.start()
                    base = self.env if self.env is not None else dict(os.environ)
                    self._child_env = {**base, **extra}
                else:
                    self._child_env = self.env
                try:
                    self._loop()
                finally:
                    self._kill_all()
                    if self.metrics is not None:
                        self.metrics.stop()
                stats = _sum_stats(Path(stats_dir))
        finally:
            if restore is not None:
                restore()
        if self._error is not None:
            raise self._error
        return stats

    async def run_async(self) -> PoolStats:
        """``run()`` in a worker thread; cancelling the caller stops the children
        gracefully and waits for them."""
        async with anyio.create_task_group() as tg:

            async def stop_when_cancelled() -> None:
                try:
                    await anyio.sleep_forever()
                finally:
                    self.request_stop()

            tg.start_soon(stop_when_cancelled)
            try:
                stats = await anyio.to_thread.run_sync(lambda: self.run(handle_signals=False))
            finally:
                tg.cancel_scope.cancel()
        return stats

    def _install_signal_handlers(self) -> Callable[[], None]:
        def handler(signum: int, frame: object) -> None:
            self.request_stop()

        sigs = (signal.SIGTERM, signal.SIGINT)
        previous = {s: signal.signal(s, handler) for s in sigs}

        def restore() -> None:
            for s, h in previous.items():
                signal.signal(s, h)

        return restore

    def _loop(self) -> None:
        with self._cond:
            for slot in self._slots:
                self._start(slot)
            while True:
                now = time.monotonic()
                self._apply_stop_requests(now)
                for slot in self._slots:
                    self._reap(slot, now)
                if self._stop_level == 0:
                    for slot in self._slots:
                        if slot.restart_at is not None and slot.restart_at <= now:
                            self._start(slot)
                if self._kill_at is not None and now >= self._kill_at:
                    self._kill_all()
                if all(s.done for s in self._slots):
                    return
                self._cond.wait(self._timeout(now))

    def _timeout(self, now: float) -> float | None:
        times = [s.restart_at for s in self._slots if s.restart_at is not None]
        if self._kill_at is not None:
            times.append(self._kill_at)
        if not times:
            return None
        return max(0.0, min(times) - now)

    def _apply_stop_requests(self, now: float) -> None:
        wanted = 0
        if self._stop_requests:
            wanted = 2 if self._stop_requests > 1 or self._force_requested else 1
        while self._stop_level < wanted:
            self._stop_level += 1
            forced = self._stop_level == 2
            _log.warning(
                "omniq supervisor: %s stop of %d worker process(es)",
                "forced" if forced else "graceful",
                len(self._live()),
            )
            for slot in self._slots:
                slot.restart_at = None
                if slot.proc is None:
                    slot.done = True
                else:
                    _signal(slot.proc, signal.SIGTERM)
            limit = now + (FORCE_KILL_AFTER if forced else self.grace + STOP_MARGIN)
            self._kill_at = limit if self._kill_at is None else min(self._kill_at, limit)

    def _live(self) -> list[subprocess.Popen[bytes]]:
        return [s.proc for s in self._slots if s.proc is not None and s.proc.poll() is None]

    def _start(self, slot: _Slot) -> None:
        slot.restart_at = None
        spec = msgspec.structs.replace(
            self.spec,
            slot=slot.index,
            stats_dir=self._stats_dir,
            scheduler=self.spec.scheduler and slot.index == 0,
        )
        if self.metrics is not None:  # the first child alone reads the store gauges
            spec.options = {**spec.options, "metrics": True, "metrics_store": slot.index == 0}
        popen_kw: dict[str, Any] = {}
        if os.name == "posix":
            popen_kw["process_group"] = 0
        if spec.options.get("worker_type") == "gevent":
            cmd = boot_command(CHILD_MODULE, "main", [], argv0=CHILD_MODULE)
        else:
            cmd = [sys.executable, "-m", CHILD_MODULE]
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.PIPE,
            env=self._child_env,
            **popen_kw,
        )
        assert proc.stdin is not None
        try:
            proc.stdin.write(msgspec.json.encode(spec) + b"\n")
            proc.stdin.flush()
        except OSError:  # it died at once; reaped like any other death
            pass
        slot.proc = proc
        slot.started = time.monotonic()
        threading.Thread(
            target=self._watch, args=(proc,), name=f"omniq-supervisor-{proc.pid}", daemon=True
        ).start()

    def _watch(self, proc: subprocess.Popen[bytes]) -> None:
        proc.wait()
        with self._cond:
            self._cond.notify_all()

    def _reap(self, slot: _Slot, now: float) -> None:
        proc = slot.proc
        if proc is None:
            return
        code = proc.poll()
        if code is None:
            return
        slot.proc = None
        if self.metrics is not None:
            self.metrics.child_exited(proc.pid)
        if proc.stdin is not None:
            with contextlib.suppress(OSError):
                proc.stdin.close()
        lived = now - slot.started
        if self._stop_level:
            slot.done = True
            return
        if code == CHILD_CONFIG_ERROR:
            slot.done = True
            self._error = ConfigError(
                "worker process",
                slot.index,
                "a worker that can start",
                f"it exited with code {code}: a configuration error, see its message above",
            )
            _log.error(
                "omniq supervisor: worker process %d (pid %d) could not start "
                "(configuration error); stopping the others",
                slot.index,
                proc.pid,
            )
            self.request_stop()
            self._apply_stop_requests(now)
            return
        if self.spec.burst and code == 0:
            slot.done = True
            return
        self._schedule_restart(slot, proc.pid, code, lived, now)

    def _schedule_restart(self, slot: _Slot, pid: int, code: int, lived: float, now: float) -> None:
        slot.deaths.append(now)
        while slot.deaths and slot.deaths[0] < now - self.crash_window:
            slot.deaths.popleft()
        slot.streak = 1 if lived >= self.crash_window else slot.streak + 1
        delay = min(self.restart_cap, self.restart_delay * 2 ** (slot.streak - 1))
        slot.restart_at = now + delay
        self.restarts += 1
        what = f"worker process {slot.index} (pid {pid}) {_describe_exit(code)} after {lived:.1f}s"
        if len(slot.deaths) >= self.crash_limit:
            _log.error(
                "omniq supervisor: CRASH LOOP: %s; it died %d times in %.0fs, "
                "restarting in %.1fs (backing off up to %.0fs; see its output above)",
                what,
                len(slot.deaths),
                self.crash_window,
                delay,
                self.restart_cap,
            )
        else:
            _log.warning("omniq supervisor: %s; restarting in %.1fs", what, delay)

    def _kill_all(self) -> None:
        for proc in self._live():
            _log.warning("omniq supervisor: killing worker process pid %d", proc.pid)
            with contextlib.suppress(OSError):
                proc.kill()
        self._kill_at = None


def _signal(proc: subprocess.Popen[bytes], sig: int) -> None:
    with contextlib.suppress(OSError):
        proc.send_signal(sig)


def _sum_stats(stats_dir: Path) -> PoolStats:
    """The counters of every child run that wrote its stats, summed."""
    total: dict[str, int] = dict.fromkeys(PoolStats.__struct_fields__, 0)
    for path in sorted(stats_dir.glob("*.json")):
        try:
            one = msgspec.json.decode(path.read_bytes(), type=PoolStats)
        except (OSError, msgspec.DecodeError):
            continue
        for name in total:
            total[name] += getattr(one, name)
    return PoolStats(**total)


class _Stores(Protocol):
    """What the supervisor reads from an OmniQ (the facade, without importing it)."""

    @property
    def settings(self) -> Settings: ...
    @property
    def task_queue_url(self) -> str: ...
    @property
    def _result_spec(self) -> object: ...
    @property
    def _event_spec(self) -> object: ...


def _url(spec: object) -> str | None:
    if spec is None or isinstance(spec, str):
        return spec
    return str(getattr(spec, "url", spec))  # a Backend object: its URL


def supervisor_for(
    oq: _Stores,
    opts: Mapping[str, Any],
    processes: int,
    *,
    burst: bool,
    app: str | None = None,
    scheduler: bool = False,
) -> Supervisor:
    """A Supervisor of ``processes`` children running ``oq``'s worker with ``opts`` (the
    ``run_worker`` keyword arguments); with ``app``, the children import the OmniQ
    from that ``module:attr`` instead of re-creating it from ``oq``'s URLs."""
    opts = dict(opts)
    port = opts.pop("metrics_port", None)
    host = opts.pop("metrics_host", None)
    metrics = MultiprocessExporter(host or "127.0.0.1", port) if port is not None else None
    worker_type = opts.get("worker_type")
    if worker_type is not None:
        opts["worker_type"] = str(getattr(worker_type, "value", worker_type))
    if opts.get("queues") is not None:
        opts["queues"] = list(opts["queues"])
    spec = child_spec(
        task_queue=oq.task_queue_url,
        result_storage=_url(oq._result_spec),
        event_storage=_url(oq._event_spec),
        settings=oq.settings,
        options=opts,
        burst=burst,
        app=app,
        scheduler=scheduler and not burst,
    )
    grace = opts.get("shutdown_grace")
    return Supervisor(
        spec,
        processes,
        grace=float(grace) if grace is not None else oq.settings.shutdown_grace,
        metrics=metrics,
    )
