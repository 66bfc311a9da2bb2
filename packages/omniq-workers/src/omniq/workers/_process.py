"""ProcessWorker: CPU-bound functions in long-lived child processes, one call per child."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import signal
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection
from multiprocessing.context import BaseContext
from multiprocessing.process import BaseProcess
from typing import Any

import msgspec

from omniq.models import Payload, RemoteTaskError, WorkerCrashedError, WorkerType, settings
from omniq.serialization import SerializationManager

from ._base import Worker, timeout_error
from ._child import Reply, Request, child_main

__all__ = ["ProcessWorker", "RemoteTaskError"]

log = logging.getLogger("omniq.workers")

_encode = msgspec.msgpack.Encoder().encode
_decode_reply = msgspec.msgpack.Decoder(Reply).decode


class _Child:
    __slots__ = ("conn", "proc")

    def __init__(self, proc: BaseProcess, conn: Connection) -> None:
        self.proc = proc
        self.conn = conn


def _describe_exit(proc: BaseProcess) -> str:
    code = proc.exitcode
    if code is None:
        return "died"
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


class ProcessWorker(Worker):
    """Runs functions in ``capacity`` long-lived child processes.

    Functions travel by import path (or signed dill when enabled), arguments and results
    as omniq-serialization payloads. Each child builds its own SerializationManager by
    calling ``serializer_factory`` (picklable; e.g. ``functools.partial(
    SerializationManager.from_settings, settings)``; default: ``SerializationManager``).
    Children start with ``spawn`` by default (``fork`` is unsafe from a threaded
    asyncio process); ``mp_context="forkserver"`` starts
    replacements faster but keeps a fork server process for the life of the program.

    A child that dies mid-call (SIGKILL, ``os._exit``, segfault) makes that call raise
    WorkerCrashedError; a call past its timeout kills its child (SIGKILL) and raises
    TaskTimeoutError. Either way a fresh child replaces it and the pool keeps working.
    Children are daemonic: a task cannot start processes of its own.
    """

    worker_type = WorkerType.PROCESS

    def __init__(
        self,
        capacity: int = settings.PROCESS_WORKERS,
        *,
        serializer: SerializationManager | None = None,
        serializer_factory: Callable[[], Any] | None = None,
        allowed_modules: Sequence[str] | None = None,
        mp_context: str | BaseContext | None = None,
    ) -> None:
        super().__init__(capacity)
        self.serializer = serializer if serializer is not None else SerializationManager()
        self.serializer_factory: Callable[[], Any] = serializer_factory or SerializationManager
        self.allowed_modules = tuple(allowed_modules) if allowed_modules is not None else None
        if mp_context is None or isinstance(mp_context, str):
            self._ctx: BaseContext = multiprocessing.get_context(mp_context or "spawn")
        else:
            self._ctx = mp_context
        self._idle: list[_Child] = []
        self._children: set[_Child] = set()
        self._stopping = False

    @property
    def pids(self) -> list[int]:
        """Process ids of the live children."""
        return [c.proc.pid for c in self._children if c.proc.pid is not None]

    async def start(self) -> None:
        if self._started:
            return
        self._stopping = False
        for _ in range(self.capacity):
            self._idle.append(self._spawn())
        await super().start()

    def _spawn(self) -> _Child:
        parent_conn, child_conn = self._ctx.Pipe(duplex=True)
        proc = self._ctx.Process(  # type: ignore[attr-defined]
            target=child_main,
            args=(child_conn, self.serializer_factory, self.allowed_modules),
            name="omniq-process-worker",
            daemon=True,
        )
        proc.start()
        child_conn.close()
        child = _Child(proc, parent_conn)
        self._children.add(child)
        return child

    def _take(self) -> _Child:
        while self._idle:
            child = self._idle.pop()
            if child.proc.is_alive():
                return child
            self._discard(child)  # died while idle (OOM killer, ...): replace silently
        return self._spawn()

    def _discard(self, child: _Child, *, kill: bool = False) -> None:
        if child not in self._children:
            return  # already reaped (stop() raced a call that was ending)
        self._children.discard(child)
        if kill and child.proc.exitcode is None:
            child.proc.kill()
        child.proc.join(1.0)  # a killed or dead child is reaped at once
        if child.proc.exitcode is None:  # pragma: no cover - kill is not ignorable
            log.warning("process worker child %s did not exit after SIGKILL", child.proc.pid)
        else:
            child.proc.close()
        child.conn.close()

    def _replace(self, child: _Child, *, kill: bool) -> None:
        self._discard(child, kill=kill)
        if not self._stopping and self._started:
            self._idle.append(self._spawn())

    async def call(
        self,
        func: str,
        payload: Payload | None,
        timeout: float | None,  # noqa: ASYNC109
        func_payload: Payload | None = None,
    ) -> Payload | None:
        """Run ``func`` with serialized ``(args, kwargs)`` in a child; return the value payload.

        The caller holds a slot. Raises RemoteTaskError for the task's own exception.
        """
        child = self._take()
        conn = child.conn
        try:
            conn.send_bytes(_encode(Request(func, func_payload, payload)))
        except OSError:
            self._replace(child, kill=True)
            raise WorkerCrashedError(f"process worker child {child.proc.pid} is gone") from None
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[int] = loop.create_future()
        fds = (conn.fileno(), child.proc.sentinel)
        for fd in fds:
            loop.add_reader(fd, _ready, fut, fd)
        ok = False
        try:
            if timeout is None:
                await fut
            else:
                try:
                    async with asyncio.timeout(timeout):
                        await fut
                except TimeoutError:
                    if fut.cancelled():
                        raise timeout_error(timeout) from None
                    raise
            for fd in fds:
                loop.remove_reader(fd)
            try:
                frame = conn.recv_bytes() if conn.poll() else None
            except (EOFError, OSError):
                frame = None
            if frame is None:
                child.proc.join(1.0)
                raise WorkerCrashedError(
                    f"process worker child {child.proc.pid} {_describe_exit(child.proc)} "
                    f"while running {func}"
                )
            reply = _decode_reply(frame)
            ok = True
        finally:
            for fd in fds:
                loop.remove_reader(fd)
            if ok:
                self._idle.append(child)
            else:  # timed out, cancelled or crashed: the child cannot be trusted any more
                self._replace(child, kill=True)
        if not reply.ok:
            assert reply.error is not None
            raise RemoteTaskError(reply.error)
        return reply.value

    async def execute(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        timeout: float | None,  # noqa: ASYNC109
    ) -> Any:
        func, func_payload = self.serializer.encode_callable(fn)
        payload = self.serializer.dumps_call(tuple(args), dict(kwargs)) if args or kwargs else None
        value = await self.call(func, payload, timeout, func_payload)
        return None if value is None else self.serializer.loads(value)

    async def stop(self, *, force: bool = False, timeout: float = 5.0) -> None:  # noqa: ASYNC109
        self._stopping = True
        idle, self._idle = self._idle, []
        for child in idle:
            with contextlib.suppress(OSError):
                child.conn.send_bytes(b"")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        for child in idle:
            if child.proc.exitcode is None:
                await _wait_fd(child.proc.sentinel, max(0.0, deadline - loop.time()))
        for child in list(self._children):
            self._discard(child, kill=True)
        await super().stop(force=force, timeout=timeout)


def _ready(fut: asyncio.Future[int], fd: int) -> None:
    if not fut.done():
        fut.set_result(fd)


async def _wait_fd(fd: int, timeout: float) -> bool:  # noqa: ASYNC109
    """Wait until ``fd`` is readable (a process sentinel: the process ended)."""
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[int] = loop.create_future()
    loop.add_reader(fd, _ready, fut, fd)
    try:
        async with asyncio.timeout(timeout):
            await fut
        return True
    except TimeoutError:
        return False
    finally:
        loop.remove_reader(fd)
