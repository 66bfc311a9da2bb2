"""The loop a ProcessWorker child runs: receive a call, run it, send the outcome back.

A child is a fresh interpreter started by ``python -c`` with :data:`BOOTSTRAP`, which
imports this module and calls :func:`main`: the parent's ``__main__`` (the user's script)
is never imported, so a script without an ``if __name__ == "__main__":`` guard runs once.
Messages are msgpack (msgspec) frames over a socket pair; arguments and results stay
serialization payloads, so the parent never unpickles what a child made.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import signal
import struct
import sys
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import msgspec

from omniq.models import ErrorInfo, Payload, Progress, Retry, WorkerType

from ._context import TaskContext, reset_current, set_current

if TYPE_CHECKING:  # multiprocessing and pickle load in a child or when a child starts
    from multiprocessing.connection import Connection

__all__ = [
    "BOOTSTRAP",
    "CallContext",
    "Init",
    "ProgressFrame",
    "Reply",
    "Request",
    "child_main",
    "encode_init",
    "frame_header",
    "main",
    "take_frame",
]

BOOTSTRAP = "import sys; from omniq.workers._child import main; main(int(sys.argv[1]))"
"""The ``python -c`` program of a child; its argument is the socket's file descriptor."""

_HEADER = struct.Struct("!i")
_BIG = struct.Struct("!iQ")
READ = 1 << 16
"""Bytes read from the socket at a time (parent and child)."""


def frame_header(n: int) -> bytes:
    """The header of an ``n``-byte frame as ``multiprocessing.connection.Connection``
    writes it (a child's first frame is read with its ``recv_bytes``)."""
    return _BIG.pack(-1, n) if n > 0x7FFFFFFF else _HEADER.pack(n)


def take_frame(buf: bytearray) -> bytes | None:
    """Remove the first whole frame from ``buf`` and return its body; None while
    ``buf`` holds no whole frame."""
    if len(buf) < 4:
        return None
    (n,) = _HEADER.unpack_from(buf)
    head = 4
    if n == -1:
        if len(buf) < 12:
            return None
        n = _BIG.unpack_from(buf)[1]
        head = 12
    if len(buf) < head + n:
        return None
    frame = bytes(buf[head : head + n])
    del buf[: head + n]
    return frame


class _Frames:
    """A child's reader of the parent's frames: one ``read`` per frame that arrives
    whole (``Connection.recv_bytes`` reads the header and the body apart)."""

    __slots__ = ("buf", "fd")

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.buf = bytearray()

    def recv(self) -> bytes:
        buf = self.buf
        while (frame := take_frame(buf)) is None:
            chunk = os.read(self.fd, READ)
            if not chunk:
                raise EOFError
            buf += chunk
        return frame


class Init(msgspec.Struct, array_like=True):
    """The first frame a child receives: the parent's ``sys.path`` and a pickle of
    ``(serializer_factory, allowed_modules)`` (trusted: it comes from the parent over a
    socket pair only the two processes hold)."""

    sys_path: list[str]
    setup: bytes


class CallContext(msgspec.Struct, array_like=True):
    """The running task a call belongs to: the child's ``current_task()``."""

    task_id: str
    attempt: int
    queue: str
    worker_id: str


class Request(msgspec.Struct, array_like=True):
    """Call ``func`` (import path, or signed dill in ``func_payload``) with ``payload``."""

    func: str
    func_payload: Payload | None
    payload: Payload | None
    context: CallContext | None = None


class Reply(msgspec.Struct, array_like=True, tag="r"):
    """Either the serialized return value (None for None) or the error; ``retry_delay``
    is the delay of a ``Retry`` the task raised (-1.0 for none, as the error says)."""

    ok: bool
    value: Payload | None = None
    error: ErrorInfo | None = None
    retry_delay: float | None = None


class ProgressFrame(msgspec.Struct, array_like=True, tag="p"):
    """A ``set_progress`` call made in the child, sent before the call's ``Reply``."""

    progress: Progress


class _Progress:
    """The child's progress sink: keeps the latest value, sends it at most every
    ``interval`` seconds (and once more before the reply), so tight loops cost little."""

    def __init__(self, conn: Connection, encode: Callable[[Any], bytes], interval: float) -> None:
        self.conn = conn
        self.encode = encode
        self.interval = interval
        self.lock = threading.Lock()
        self.pending: Progress | None = None
        self.sent = 0.0

    def __call__(self, ctx: TaskContext, progress: Progress) -> None:
        with self.lock:
            self.pending = progress
            t = time.monotonic()
            if t - self.sent >= self.interval:
                self._send(t)

    def flush(self) -> None:
        with self.lock:
            if self.pending is not None:
                self._send(time.monotonic())

    def _send(self, t: float) -> None:
        progress, self.pending = self.pending, None
        self.sent = t
        if progress is not None:
            with contextlib.suppress(OSError):
                self.conn.send_bytes(self.encode(ProgressFrame(progress)))


def main(fd: int) -> None:
    """Entry point of a child: adopt the parent's import path, then serve calls on ``fd``."""
    import pickle
    from multiprocessing.connection import Connection

    # Ctrl-C reaches the whole process group; the parent decides when children stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    conn = Connection(fd)
    try:
        init = msgspec.msgpack.decode(conn.recv_bytes(), type=Init)
    except (EOFError, OSError):
        return
    sys.path[:] = init.sys_path
    serializer_factory, allowed_modules = pickle.loads(init.setup)
    child_main(conn, serializer_factory, allowed_modules)


def encode_init(serializer_factory: Callable[[], Any], allowed: Sequence[str] | None) -> bytes:
    """The :class:`Init` frame for a child."""
    import pickle

    setup = pickle.dumps((serializer_factory, allowed), protocol=pickle.HIGHEST_PROTOCOL)
    return msgspec.msgpack.encode(Init(list(sys.path), setup))


def child_main(
    conn: Connection, serializer_factory: Callable[[], Any], allowed_modules: Sequence[str] | None
) -> None:
    """Serve calls until the parent sends an empty frame or closes the pipe."""
    serializer = serializer_factory()
    decode = msgspec.msgpack.Decoder(Request).decode
    encode = msgspec.msgpack.Encoder().encode
    cache: dict[str, Callable[..., Any]] = {}
    runner: asyncio.Runner | None = None
    sink = _Progress(conn, encode, 0.2)
    frames = _Frames(conn.fileno())
    try:
        while True:
            try:
                frame = frames.recv()
            except (EOFError, OSError):
                return
            if not frame:
                return
            token: object = None
            retry_delay: float | None = None
            try:
                req = decode(frame)
                if req.context is not None:
                    c = req.context
                    token = set_current(
                        TaskContext(
                            c.task_id, c.attempt, c.queue, c.worker_id, WorkerType.PROCESS, sink
                        )
                    )
                if req.func_payload is None:
                    fn = cache.get(req.func)
                    if fn is None:
                        fn = cache[req.func] = serializer.resolve_callable(
                            req.func, allowed_modules=allowed_modules
                        )
                else:
                    fn = serializer.resolve_callable(
                        req.func, req.func_payload, allowed_modules=allowed_modules
                    )
                if req.payload is None:
                    args: tuple[Any, ...] = ()
                    kwargs: dict[str, Any] = {}
                else:
                    args, kwargs = serializer.loads_call(req.payload)
                value = fn(*args, **kwargs)
                if inspect.isawaitable(value):
                    if runner is None:
                        runner = asyncio.Runner()
                    value = runner.run(_await(value))
                reply = Reply(True, None if value is None else serializer.dumps(value))
            except BaseException as exc:  # report everything, even SystemExit
                if isinstance(exc, Retry):
                    retry_delay = -1.0 if exc.delay is None else exc.delay
                info = ErrorInfo.from_exception(exc, traceback.format_exc())
                reply = Reply(False, None, info, retry_delay)
            finally:
                if token is not None:
                    reset_current(token)
            sink.flush()
            try:
                conn.send_bytes(encode(reply))
            except (BrokenPipeError, OSError):
                return
    finally:
        if runner is not None:
            runner.close()
        conn.close()


async def _await(aw: Any) -> Any:
    return await aw
