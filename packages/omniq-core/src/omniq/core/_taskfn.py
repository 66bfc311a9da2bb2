"""``@oq.task(**options)``: the function stays itself and gains ``enqueue``/``enqueue_sync``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Generic, ParamSpec, Protocol, TypeVar, cast

from omniq.models import Task

from ._session import Enqueuer

__all__ = ["TaskFunction", "make_task_function"]

P = ParamSpec("P")
R_co = TypeVar("R_co", covariant=True)
R = TypeVar("R")


class TaskFunction(Protocol, Generic[P, R_co]):
    """A function decorated with ``@oq.task``: still directly callable, plus
    ``await f.enqueue(*args, **kwargs)`` and ``f.enqueue_sync(*args, **kwargs)`` taking the
    function's own arguments and returning the stored Task."""

    __omniq_path__: str
    __omniq_options__: dict[str, Any]

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R_co: ...

    def enqueue(self, *args: P.args, **kwargs: P.kwargs) -> Awaitable[Task]: ...

    def enqueue_sync(self, *args: P.args, **kwargs: P.kwargs) -> Task: ...

    def build(self, *args: P.args, **kwargs: P.kwargs) -> Task: ...


def make_task_function(
    oq: Enqueuer, func: Callable[P, R], options: dict[str, Any]
) -> TaskFunction[P, R]:
    """Attach the enqueue helpers to ``func`` itself (so its import path still resolves
    to it in a worker) and return it typed as a TaskFunction."""
    module = getattr(func, "__module__", None)
    qualname = getattr(func, "__qualname__", "")
    importable = isinstance(module, str) and module != "__main__" and "<" not in qualname
    target: Callable[..., Any] | str = f"{module}:{qualname}" if importable else func
    opts = dict(options)
    fn: Any = func

    async def enqueue(*args: Any, **kwargs: Any) -> Task:
        return await oq.enqueue(target, args, kwargs, **opts)

    def enqueue_sync(*args: Any, **kwargs: Any) -> Task:
        return oq.enqueue_sync(target, args, kwargs, **opts)

    def build(*args: Any, **kwargs: Any) -> Task:
        return oq.build(target, args, kwargs, **opts)

    fn.enqueue = enqueue
    fn.enqueue_sync = enqueue_sync
    fn.build = build
    fn.__omniq_path__ = target if isinstance(target, str) else ""
    fn.__omniq_options__ = opts
    if opts.get("worker") is not None:
        fn.__omniq_worker__ = str(opts["worker"])
    return cast("TaskFunction[P, R]", fn)
