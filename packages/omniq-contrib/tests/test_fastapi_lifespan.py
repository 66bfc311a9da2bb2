"""omniq_lifespan and get_omniq in a Starlette application run by Starlette's
TestClient (which runs the lifespan): one OmniQ per application, open while the
application runs, closed at shutdown; the application's own lifespan runs inside."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from omniq.contrib.fastapi import get_omniq, omniq_lifespan
from omniq.core import OmniQ
from omniq.models import BackendUnavailableError, InvalidStateError


async def enqueue(request: Request) -> JSONResponse:
    oq = get_omniq(request)
    task = await oq.enqueue("operator:add", (1, 2))
    stored = await oq.get_task(task.id)
    assert stored is not None
    return JSONResponse({"id": task.id, "extra": request.state.extra})


def test_one_omniq_per_application_closed_at_shutdown() -> None:
    made: list[OmniQ] = []
    inner_ran: list[str] = []

    def make() -> OmniQ:
        made.append(OmniQ("memory://"))
        return made[-1]

    @contextlib.asynccontextmanager
    async def inner(app: Any) -> AsyncIterator[dict[str, Any]]:
        assert made and made[0]._live() is not None  # the OmniQ is open already
        inner_ran.append("start")
        yield {"extra": "yes"}
        inner_ran.append("stop")

    app = Starlette(
        routes=[Route("/enqueue", enqueue, methods=["POST"])],
        lifespan=omniq_lifespan(make, inner=inner),
    )
    with TestClient(app) as client:
        first = client.post("/enqueue").json()
        second = client.post("/enqueue").json()
        assert first["id"] != second["id"] and first["extra"] == "yes"
        assert len(made) == 1
    assert inner_ran == ["start", "stop"]
    assert made[0]._live() is None  # closed at shutdown


def test_get_omniq_without_the_lifespan_says_so() -> None:
    app = Starlette(routes=[Route("/enqueue", enqueue, methods=["POST"])])
    with TestClient(app) as client, pytest.raises(InvalidStateError, match="omniq_lifespan"):
        client.post("/enqueue")


def test_a_startup_waits_for_an_unreachable_store_then_fails(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    made: list[OmniQ] = []

    def make() -> OmniQ:
        made.append(OmniQ(f"redis://127.0.0.1:{port}/0"))
        return made[-1]

    app = Starlette(lifespan=omniq_lifespan(make, wait=8.0))
    with (
        caplog.at_level("WARNING", logger="omniq.core"),
        pytest.raises(BackendUnavailableError, match="unreachable"),
        TestClient(app),
    ):
        pass
    assert any("trying again in" in r.getMessage() for r in caplog.records)
    assert made[0]._live() is None
