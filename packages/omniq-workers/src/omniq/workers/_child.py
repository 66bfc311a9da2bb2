"""The loop a ProcessWorker child runs: receive a call, run it, send the outcome back.

A child is a fresh interpreter started by ``python -c`` with :data:`BOOTSTRAP`, which
imports this module and calls :func:`main`: the parent's ``__main__`` (the user's script)
is never imported, so a script without an ``if __name__ == "__main__":`` guard runs once.
Messages are msgpack (msgspec) frames over a socket pair; arguments and results stay
serialization payloads, so the parent never unpickles what a child made.
"""

from __future__ import annotations

import asyncio
import inspect
import pickle
import signal
import sys
import traceback
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection
from typing import Any

import msgspec

from omniq.models import ErrorInfo, Payload

__all__ = ["BOOTSTRAP", "Init", "Reply", "Request", "child_main", "encode_init", "main"]

BOOTSTRAP = "import sys; from omniq.workers._child import main; main(int(sys.argv[1]))"
"""The ``python -c`` program of a child; its argument is the socket's file descriptor."""


class Init(msgspec.Struct, array_like=True):
    """The first frame a child receives: the parent's ``sys.path`` and a pickle of
    ``(serializer_factory, allowed_modules)`` (trusted: it comes from the parent over a
    socket pair only the two processes hold)."""

    sys_path: list[str]
    setup: bytes


class Request(msgspec.Struct, array_like=True):
    """Call ``func`` (import path, or signed dill in ``func_payload``) with ``payload``."""

    func: str
    func_payload: Payload | None
    payload: Payload | None


class Reply(msgspec.Struct, array_like=True):
    """Either the serialized return value (None for None) or the error."""

    ok: bool
    value: Payload | None = None
    error: ErrorInfo | None = None


def main(fd: int) -> None:
    """Entry point of a child: adopt the parent's import path, then serve calls on ``fd``."""
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
    try:
        while True:
            try:
                frame = conn.recv_bytes()
            except (EOFError, OSError):
                return
            if not frame:
                return
            try:
                req = decode(frame)
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
                reply = Reply(False, None, ErrorInfo.from_exception(exc, traceback.format_exc()))
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
