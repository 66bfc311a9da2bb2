"""One ``OmniQ`` per FastAPI/Starlette application (extra ``[fastapi]``).

``omniq_lifespan(make)`` is the application's lifespan: it opens the ``OmniQ`` that
``make()`` returns at startup (so a broken store fails the startup, not the first
request), keeps it in the application state, and closes it at shutdown. ``get_omniq``
is the dependency (``Annotated[OmniQ, Depends(get_omniq)]``) that hands it to a handler::

    app = FastAPI(lifespan=omniq_lifespan(lambda: OmniQ("sqlite:///app.db")))

    @app.post("/reports")
    async def create(oq: Annotated[OmniQ, Depends(get_omniq)]) -> dict[str, str]:
        task = await oq.enqueue("app.tasks:build_report")
        return {"id": task.id}

Only Starlette is needed: the same lifespan and ``get_omniq(request)`` serve a plain
Starlette application.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any

from starlette.requests import HTTPConnection

from omniq.core import OmniQ
from omniq.models import InvalidStateError

__all__ = ["STATE_KEY", "get_omniq", "omniq_lifespan"]

STATE_KEY = "omniq"
"""The name the ``OmniQ`` has in the lifespan state and in ``app.state``."""

Lifespan = Callable[[Any], contextlib.AbstractAsyncContextManager[Mapping[str, Any]]]


def omniq_lifespan(
    make: Callable[[], OmniQ],
    *,
    worker: bool = False,
    queues: Sequence[str] | None = None,
    concurrency: int | None = None,
    inner: Callable[[Any], contextlib.AbstractAsyncContextManager[Any]] | None = None,
    wait: float = 0.0,
) -> Lifespan:
    """A lifespan opening ``make()`` at startup and closing it at shutdown.

    ``worker=True`` also runs a worker in the application's process for the lifespan
    (``queues``, ``concurrency`` as for ``OmniQ.worker``): handy for one-process
    deployments; larger ones run ``omniq worker`` apart. ``inner`` is the
    application's own lifespan, entered inside (the ``OmniQ`` is open while it runs);
    a mapping it yields is merged into the state. ``wait``: seconds the startup keeps
    trying while a store is unreachable (``OmniQ.open``'s ``wait``), for an
    application that may start before its store; then the startup fails.
    """

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[Mapping[str, Any]]:
        oq = make()
        async with contextlib.AsyncExitStack() as stack:
            stack.push_async_callback(oq.close)  # also after a failed open
            await oq.open(wait=wait)
            app.state.omniq = oq
            state: dict[str, Any] = {STATE_KEY: oq}
            if worker:
                await stack.enter_async_context(oq.worker(queues=queues, concurrency=concurrency))
            if inner is not None:
                extra = await stack.enter_async_context(inner(app))
                if isinstance(extra, Mapping):
                    state.update(extra)
            yield state

    return lifespan


def get_omniq(conn: HTTPConnection) -> OmniQ:
    """The application's ``OmniQ`` (a dependency: ``oq: OmniQ = Depends(get_omniq)``);
    ``InvalidStateError`` when the application was not started with
    ``omniq_lifespan``."""
    oq = getattr(conn.state, STATE_KEY, None)
    if oq is None:
        oq = getattr(conn.app.state, STATE_KEY, None)
    if not isinstance(oq, OmniQ):
        raise InvalidStateError(
            "no OmniQ for this application: create it with lifespan=omniq_lifespan(...)"
        )
    return oq
