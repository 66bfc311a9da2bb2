"""ProcessWorker: CPU-bound functions in long-lived child processes, one call per child.

The parent's end of each child's socket stays registered with the event loop for the
child's whole life (its data and, on Linux, its pidfd): a call sends one frame and
awaits a future that the reader resolves, so a call costs a write, a read and the
loop's wake-up, not a registration and a poll per call. A child that exits is noticed
by its reader whether it was running a call or idle.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import weakref
from collections.abc import Callable, Sequence
from typing import Any

import msgspec

from omniq.models import (
    ErrorInfo,
    InvalidTaskError,
    Payload,
    RemoteTaskError,
    WorkerCrashedError,
    WorkerType,
    settings,
)
from omniq.serialization import SerializationManager

from ._base import Deadlines, Worker, timeout_error
from ._child import (
    BOOTSTRAP,
    READ,
    CallContext,
    ProgressFrame,
    Reply,
    Request,
    encode_init,
    frame_header,
    take_frame,
)
from ._context import TaskContext

__all__ = ["ProcessWorker", "RemoteTaskError", "check_process_callable"]

log = logging.getLogger("omniq.workers")

_encode = msgspec.msgpack.Encoder().encode
_decode_frame = msgspec.msgpack.Decoder(Reply | ProgressFrame).decode


class RemoteRetry(RemoteTaskError):
    """A process task raised ``omniq.models.Retry``; ``delay`` is its delay (-1.0: none)."""

    def __init__(self, info: ErrorInfo, delay: float) -> None:
        super().__init__(info)
        self.delay = delay

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.info, self.delay), self.__dict__


class _Child:
    """One child interpreter, the parent's end of its socket and (Linux) its pidfd.

    ``buf`` holds bytes read but not yet a whole frame; ``call`` is the future of the
    call it runs (None while idle) and ``context`` that call's task context, whose
    progress frames go to its sink; ``dead`` is set once its exit was seen."""

    __slots__ = ("buf", "call", "context", "dead", "loop", "pidfd", "proc", "sock")

    def __init__(self, proc: subprocess.Popen[bytes], sock: socket.socket) -> None:
        self.proc = proc
        self.sock = sock
        self.pidfd: int | None = None
        if hasattr(os, "pidfd_open"):
            with contextlib.suppress(OSError):  # kernels before 5.3
                self.pidfd = os.pidfd_open(proc.pid)
        self.buf = bytearray()
        self.call: asyncio.Future[Reply] | None = None
        self.context: TaskContext | None = None
        self.dead = False
        self.loop: asyncio.AbstractEventLoop | None = None

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def exitcode(self) -> int | None:
        return self.proc.poll()

    @property
    def fds(self) -> tuple[int, ...]:
        """The descriptors watched: the socket, and the pidfd (readable once the child
        has exited) where the kernel has them; the socket also ends at exit."""
        fd = self.sock.fileno()
        return (fd,) if self.pidfd is None else (fd, self.pidfd)

    def send(self, data: bytes) -> None:
        if len(data) > 16384:  # large: the header apart, not a copy of the data
            self.sock.sendall(frame_header(len(data)))
            self.sock.sendall(data)
        else:
            self.sock.sendall(frame_header(len(data)) + data)

    def unwatch(self) -> None:
        """Stop watching its descriptors (before they close, or before ``stop`` waits)."""
        loop, self.loop = self.loop, None
        if loop is not None and not loop.is_closed():
            for fd in self.fds:
                loop.remove_reader(fd)

    def reap(self, *, kill: bool) -> None:
        self.unwatch()
        if kill and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
        try:
            self.proc.wait(1.0)  # a killed or dead child is reaped at once
        except subprocess.TimeoutExpired:  # pragma: no cover - kill is not ignorable
            log.warning("process worker child %s did not exit after SIGKILL", self.proc.pid)
        self.sock.close()
        if self.pidfd is not None:
            os.close(self.pidfd)
            self.pidfd = None


def _describe_exit(child: _Child) -> str:
    code = child.exitcode
    if code is None:
        return "died"
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


def _kill_all(children: set[_Child]) -> None:
    """At interpreter exit: children of a worker never stopped do not outlive it."""
    for child in list(children):
        with contextlib.suppress(OSError, subprocess.TimeoutExpired):
            child.proc.kill()
            child.proc.wait(1.0)


def check_process_callable(func: str, func_payload: Payload | None) -> None:
    """Refuse a callable a child cannot get: one defined in the parent's ``__main__``.

    Children start from OmniQ's own entry point and never import the script being run,
    so a function of ``__main__`` (sent by dill) would find none of the script's globals.
    """
    if func_payload is not None and func.partition(":")[0] == "__main__":
        raise InvalidTaskError(
            f"{func} is defined in __main__ (the script being run); process workers start "
            "from OmniQ's own entry point and never import it: move the function into an "
            "importable module"
        )


class ProcessWorker(Worker):
    """Runs functions in ``capacity`` long-lived child processes.

    Functions travel by import path (or signed dill when enabled), arguments and results
    as omniq-serialization payloads. Each child builds its own SerializationManager by
    calling ``serializer_factory`` (picklable; e.g. ``functools.partial(
    SerializationManager.from_settings, settings)``; default: ``SerializationManager``)
    and resolves functions through the same ``allowed_modules`` list as the parent.

    A child is a fresh interpreter (``sys.executable``) running OmniQ's own entry point
    (``omniq.workers._child``) with the parent's ``sys.path``: unlike multiprocessing's
    spawn and forkserver, it never re-imports the parent's ``__main__``, so a script
    without an ``if __name__ == "__main__":`` guard is not run again in every child. The
    price: functions defined in ``__main__`` cannot run here (InvalidTaskError).

    A child that dies mid-call (SIGKILL, ``os._exit``, segfault) makes that call raise
    WorkerCrashedError; a call past its timeout kills its child (SIGKILL) and raises
    TaskTimeoutError. Either way a fresh child replaces it and the pool keeps working.
    Children still running when the interpreter exits are killed.
    """

    worker_type = WorkerType.PROCESS

    def __init__(
        self,
        capacity: int = settings.PROCESS_WORKERS,
        *,
        serializer: SerializationManager | None = None,
        serializer_factory: Callable[[], Any] | None = None,
        allowed_modules: Sequence[str] | None = None,
    ) -> None:
        super().__init__(capacity)
        self.serializer = serializer if serializer is not None else SerializationManager()
        self.serializer_factory: Callable[[], Any] = serializer_factory or SerializationManager
        self.allowed_modules = tuple(allowed_modules) if allowed_modules is not None else None
        self._idle: list[_Child] = []
        self._children: set[_Child] = set()
        self._stopping = False
        self._init_frame: bytes | None = None
        self._deadlines: Deadlines | None = None
        weakref.finalize(self, _kill_all, self._children)

    @property
    def pids(self) -> list[int]:
        """Process ids of the live children."""
        return [c.pid for c in self._children]

    async def start(self) -> None:
        if self._started:
            return
        self._stopping = False
        for _ in range(self.capacity):
            self._idle.append(self._spawn())
        await super().start()

    def _spawn(self) -> _Child:
        if self._init_frame is None:
            self._init_frame = encode_init(self.serializer_factory, self.allowed_modules)
        ours, theirs = socket.socketpair()
        try:
            proc = subprocess.Popen(
                [sys.executable, "-c", BOOTSTRAP, str(theirs.fileno())],
                stdin=subprocess.DEVNULL,
                pass_fds=(theirs.fileno(),),
            )
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        child = _Child(proc, ours)
        self._children.add(child)
        with contextlib.suppress(OSError):  # it died at once: the first call reports it
            child.send(self._init_frame)
        loop = asyncio.get_running_loop()
        child.loop = loop
        for fd in child.fds:
            loop.add_reader(fd, self._readable, child, fd)
        return child

    def _take(self) -> _Child:
        while self._idle:
            child = self._idle.pop()
            if not child.dead:
                return child
            self._discard(child)
        return self._spawn()

    def _readable(self, child: _Child, fd: int) -> None:
        """A child's socket or pidfd is readable: take in its frames; at its end (the
        socket closed, the pidfd signalled) fail its call or, idle, replace it."""
        if fd == child.sock.fileno():
            if self._read(child) >= 0:
                return
        else:  # the child exited: the frames it sent before are still in the socket
            while self._read(child) > 0:
                pass
        if child.dead:
            return
        child.dead = True
        child.unwatch()
        fut = child.call
        if fut is not None:
            if not fut.done():
                with contextlib.suppress(subprocess.TimeoutExpired):
                    child.proc.wait(1.0)
                fut.set_exception(
                    WorkerCrashedError(f"process worker child {child.pid} {_describe_exit(child)}")
                )
        elif child in self._idle:  # died while idle (OOM killer, ...): replace silently
            self._idle.remove(child)
            self._replace(child, kill=False)

    def _read(self, child: _Child) -> int:
        """Read what the socket holds and dispatch every whole frame: 1 if bytes came,
        0 if none were there, -1 at the socket's end."""
        try:
            data = child.sock.recv(READ, socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):
            return 0
        except OSError:
            return -1
        if not data:
            return -1
        buf = child.buf
        buf += data
        while (frame := take_frame(buf)) is not None:
            self._dispatch(child, frame)
        return 1

    def _dispatch(self, child: _Child, frame: bytes) -> None:
        fut = child.call
        try:
            msg = _decode_frame(frame)
        except msgspec.DecodeError as exc:
            if fut is not None and not fut.done():
                fut.set_exception(exc)
            return
        if isinstance(msg, Reply):
            if fut is not None and not fut.done():
                fut.set_result(msg)
            return
        context = child.context
        if context is not None:
            sink = context._sink
            if sink is not None:
                sink(context, msg.progress)

    def _discard(self, child: _Child, *, kill: bool = False) -> None:
        if child not in self._children:
            return  # already reaped (stop() raced a call that was ending)
        self._children.discard(child)
        fut = child.call
        if fut is not None and not fut.done():  # stop() ends a child still running a call
            fut.set_exception(WorkerCrashedError(f"process worker child {child.pid} was stopped"))
        child.reap(kill=kill)

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
        context: TaskContext | None = None,
    ) -> Payload | None:
        """Run ``func`` with serialized ``(args, kwargs)`` in a child; return the value payload.

        The caller holds a slot. Raises RemoteTaskError for the task's own exception.
        ``context`` becomes the child's ``current_task()``; its ``set_progress`` calls
        come back over the socket and go to ``context``'s sink here.
        """
        check_process_callable(func, func_payload)
        child = self._take()
        ctx = (
            None
            if context is None
            else CallContext(context.task_id, context.attempt, context.queue, context.worker_id)
        )
        loop = child.loop or asyncio.get_running_loop()
        fut: asyncio.Future[Reply] = loop.create_future()
        child.call = fut
        child.context = context
        try:
            child.send(_encode(Request(func, func_payload, payload, ctx)))
        except OSError:
            child.call = child.context = None
            self._replace(child, kill=True)
            raise WorkerCrashedError(f"process worker child {child.pid} is gone") from None
        ok = False
        try:
            try:
                if timeout is None:
                    reply = await fut
                else:
                    # The deadline cancels the call's future, not the calling task: a
                    # CancelledError while the task has no cancel request of its own
                    # is the timeout.
                    deadlines = self._deadlines
                    if deadlines is None or deadlines._loop is not loop:
                        deadlines = self._deadlines = Deadlines(loop)
                    task = asyncio.current_task()
                    cancelling = 0 if task is None else task.cancelling()
                    bucket, key, d = deadlines.add(timeout, fut)
                    try:
                        reply = await fut
                    except asyncio.CancelledError:
                        if d.fired and (task is None or task.cancelling() <= cancelling):
                            raise timeout_error(timeout) from None
                        raise
                    finally:
                        bucket.pop(key, None)
            except WorkerCrashedError as exc:
                raise WorkerCrashedError(f"{exc} while running {func}") from None
            ok = True
        finally:
            child.call = child.context = None
            if ok and not child.dead:
                self._idle.append(child)
            else:  # timed out, cancelled or crashed: the child cannot be trusted any more
                self._replace(child, kill=True)
        if not reply.ok:
            assert reply.error is not None
            if reply.retry_delay is not None:
                raise RemoteRetry(reply.error, reply.retry_delay)
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
            child.unwatch()  # _wait_fd watches its exit below
            with contextlib.suppress(OSError):
                child.send(b"")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        for child in idle:
            if child.exitcode is None:
                await _wait_fd(child.fds[-1], max(0.0, deadline - loop.time()))
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
