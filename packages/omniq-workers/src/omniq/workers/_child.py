"""The loop a ProcessWorker child runs: receive a call, run it, send the outcome back.

Messages are msgpack (msgspec) frames over a multiprocessing pipe; arguments and
results stay serialization payloads, so the parent never unpickles what a child made.
"""

from __future__ import annotations

import asyncio
import inspect
import signal
import traceback
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection
from typing import Any

import msgspec

from omniq.models import ErrorInfo, Payload

__all__ = ["Reply", "Request", "child_main"]


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


def child_main(
    conn: Connection, serializer_factory: Callable[[], Any], allowed_modules: Sequence[str] | None
) -> None:
    """Serve calls until the parent sends an empty frame or closes the pipe."""
    serializer = serializer_factory()
    # Ctrl-C reaches the whole process group; the parent decides when children stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
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
                    fn = serializer.resolve_callable(req.func, req.func_payload)
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


async def _await(aw: Any) -> Any:
    return await aw
