"""``create_app``: the dashboard as a Starlette ASGI application."""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from omniq.core import OmniQ
from omniq.models import OmniQError, TaskStatus, validate_task_id

from . import _pages as pages
from ._counts import SharedCounts
from ._html import layout
from ._metrics import metrics_response
from ._security import (
    CSRF_COOKIE,
    CSRF_FIELD,
    AuthCheck,
    auth_from_env,
    check_auth,
    csrf_ok,
    new_token,
)
from ._stats import queue_stats

__all__ = ["create_app"]

STATIC = Path(__file__).parent / "static"
PAGE = 50
FUNC_SCAN = 5000
"""Tasks read at most per page when filtering by function (the store has no index on
it); the page then offers the next window."""

Handler = Callable[[Request], Awaitable[Response]]


class _Dashboard:
    def __init__(self, oq: OmniQ, read_only: bool, poll: float) -> None:
        self.oq = oq
        self.read_only = read_only
        self.poll = poll
        self.counts = SharedCounts(oq, poll)

    # -- plumbing ------------------------------------------------------------------------

    def view(self, request: Request) -> pages.View:
        return pages.View(
            str(request.scope.get("root_path", "")).rstrip("/"),
            request.state.csrf,
            self.read_only,
            self.poll,
        )

    def page(self, request: Request, active: str, title: str, body: str) -> HTMLResponse:
        v = self.view(request)
        return HTMLResponse(layout(v.base, active, title, body, read_only=self.read_only))

    async def act(
        self, request: Request, fn: Callable[[dict[str, str]], Awaitable[Any]]
    ) -> Response:
        """Run an action POST: read-only and CSRF checks, then redirect back."""
        if self.read_only:
            return PlainTextResponse("the dashboard is read-only", status_code=403)
        form = {k: str(val) for k, val in (await request.form()).items()}
        if not csrf_ok(request, form.get(CSRF_FIELD)):
            return PlainTextResponse("CSRF token missing or wrong", status_code=403)
        try:
            await fn(form)
        except (ValueError, OmniQError) as exc:  # a bad name or id in the request
            return PlainTextResponse(str(exc), status_code=400)
        self.counts.invalidate()  # the page shown next reflects the action
        base = self.view(request).base
        nxt = form.get("next") or ""
        if not nxt.startswith("/") or nxt.startswith("//"):
            referer = request.headers.get("referer", "")
            nxt = referer if referer.startswith(str(request.base_url)) else base + "/"
            return RedirectResponse(nxt, status_code=303)
        return RedirectResponse(base + nxt, status_code=303)

    # -- pages ---------------------------------------------------------------------------

    async def _queues(self, request: Request) -> str:
        c = await self.counts.get()
        now = time.time()
        rows = await queue_stats(self.oq, c.queues, c.oldest_ages(now), self.counts.sampler)
        return pages.queues_fragment(self.view(request), rows, age=now - c.at)

    async def overview(self, request: Request) -> Response:
        return self.page(request, "overview", "Queues", await self._queues(request))

    async def queues_fragment(self, request: Request) -> Response:
        return HTMLResponse(await self._queues(request))

    async def tasks(self, request: Request) -> Response:
        p = request.query_params
        filters = {k: p.get(k, "") for k in ("queue", "status", "func", "since", "until", "before")}
        status = TaskStatus(filters["status"]) if filters["status"] in _STATUSES else None
        after = _id_floor(filters["since"])
        before = filters["before"] or _id_floor(filters["until"])
        if filters["before"] and filters["until"]:
            before = min(filters["before"], _id_floor(filters["until"]) or filters["before"])
        func = filters["func"].strip()
        queue = filters["queue"].strip() or None
        shown: list[Any] = []
        scanned, cursor, note = 0, before, ""
        next_before: str | None = None
        while True:
            chunk = PAGE if not func else 500
            got = await self.oq.task_page(
                queue=queue, status=status, after=after, before=cursor, limit=chunk
            )
            scanned += len(got)
            for t in got:
                if not func or func in t.func:
                    shown.append(t)
                    if len(shown) == PAGE:
                        break
            if len(shown) == PAGE:
                next_before = shown[-1].id
                break
            if len(got) < chunk:
                break
            cursor = got[-1].id
            if scanned >= FUNC_SCAN:
                next_before = cursor
                note = f"Looked at {scanned} tasks for this function; older ones follow."
                break
        body = pages.tasks_body(self.view(request), shown, filters, next_before, note)
        return self.page(request, "tasks", "Tasks", body)

    async def task(self, request: Request) -> Response:
        tid = request.path_params["task_id"]
        try:
            validate_task_id(tid)
        except (ValueError, OmniQError):
            return PlainTextResponse("not a task id", status_code=404)
        task = await self.oq.get_task(tid)
        if task is None:
            return self.page(request, "tasks", "Unknown task", "<p>No task with this id.</p>")
        result = await self.oq.stored_result(tid)
        progress = await self.oq.get_progress(tid)
        events = await self.oq.query_events(task_id=tid, limit=500)
        body = pages.task_body(self.view(request), task, result, progress, events)
        return self.page(request, "tasks", f"Task {task.func}", body)

    async def trail(self, request: Request) -> Response:
        tid = request.path_params["task_id"]
        task = await self.oq.get_task(tid)
        events = await self.oq.query_events(task_id=tid, limit=500)
        live = task is not None and not task.status.is_terminal
        return HTMLResponse(pages.trail_fragment(self.view(request), tid, events, live))

    async def dead_letters(self, request: Request) -> Response:
        queue = request.query_params.get("queue", "") or None
        raw = request.query_params.get("offset", "0")
        offset = max(0, int(raw)) if raw.isdigit() else 0
        letters = await self.oq.dead_letters(queue, limit=PAGE + 1, offset=offset)
        body = pages.dead_letters_body(
            self.view(request), letters[:PAGE], queue or "", offset, len(letters) > PAGE
        )
        return self.page(request, "dead", "Dead letters", body)

    async def schedules(self, request: Request) -> Response:
        body = pages.schedules_body(self.view(request), await self.oq.list_schedules())
        return self.page(request, "schedules", "Schedules", body)

    async def workers(self, request: Request) -> Response:
        body = pages.workers_fragment(self.view(request), await self.oq.list_workers())
        return self.page(request, "workers", "Workers", body)

    async def workers_fragment(self, request: Request) -> Response:
        return HTMLResponse(
            pages.workers_fragment(self.view(request), await self.oq.list_workers())
        )

    async def metrics(self, request: Request) -> Response:
        return await metrics_response(self.counts, self.oq)

    # -- actions -------------------------------------------------------------------------

    async def pause_queue(self, request: Request) -> Response:
        name = request.path_params["queue"]
        return await self.act(request, lambda _f: self.oq.pause_queue(name))

    async def resume_queue(self, request: Request) -> Response:
        name = request.path_params["queue"]
        return await self.act(request, lambda _f: self.oq.resume_queue(name))

    async def requeue(self, request: Request) -> Response:
        return await self.act(request, lambda f: self.oq.requeue([f.get("id", "")]))

    async def purge(self, request: Request) -> Response:
        return await self.act(request, lambda _f: self.oq.purge_dead_letters())

    async def schedule_action(self, request: Request) -> Response:
        sid, op = request.path_params["schedule_id"], request.path_params["op"]
        ops = {
            "pause": self.oq.pause_schedule,
            "resume": self.oq.resume_schedule,
            "delete": self.oq.delete_schedule,
        }
        if op not in ops:
            return PlainTextResponse("unknown action", status_code=404)
        return await self.act(request, lambda _f: ops[op](sid))


_STATUSES = frozenset(s.value for s in TaskStatus)
_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2})?$")


def _id_floor(text: str) -> str | None:
    """The smallest task id made at a UTC time (``YYYY-MM-DDTHH:MM[:SS]``): ids are
    UUIDv7, their first 48 bits the creation time in milliseconds."""
    if not text or not _DATETIME.match(text):
        return None
    ms = int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)
    h = f"{ms:012x}"
    return f"{h[:8]}-{h[8:12]}-0000-0000-000000000000"


class _Guard(BaseHTTPMiddleware):
    """Auth hook first, then the CSRF cookie for every page that may show a form."""

    def __init__(self, app: Any, auth: AuthCheck | None) -> None:
        super().__init__(app)
        self.auth = auth

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        if not await check_auth(self.auth, request):
            return PlainTextResponse(
                "authentication required",
                status_code=401,
                headers={"WWW-Authenticate": 'Basic realm="OmniQ"'},
            )
        token = request.cookies.get(CSRF_COOKIE)
        request.state.csrf = token or new_token()
        response = await call_next(request)
        if not token:
            response.set_cookie(
                CSRF_COOKIE, request.state.csrf, httponly=True, samesite="strict", path="/"
            )
        return response


def create_app(
    url: str | None = None,
    *,
    oq: OmniQ | None = None,
    events_url: str | None = None,
    read_only: bool = False,
    auth: AuthCheck | None = None,
    poll: float = 2.0,
) -> Starlette:
    """The dashboard as an ASGI app: serve it with ``omniq web`` or any ASGI server, or
    mount it inside a FastAPI/Starlette app (``app.mount("/omniq", create_app(...))``).

    It reads and acts on ``oq`` (an ``OmniQ`` the caller owns), else on one made from
    ``url``/``events_url`` and the ``OMNIQ_*`` environment, closed by the app's lifespan.
    A mounted app's lifespan does not run (Starlette runs only the outer app's), so when
    mounting pass ``oq=`` and close it in your own lifespan.
    ``read_only`` hides the buttons and refuses every action. ``auth`` is called with
    each request and lets it through when it returns True (``BasicAuth(user,
    password)``, or your own check); without it, ``OMNIQ_WEB_PASSWORD`` (and
    ``OMNIQ_WEB_USERNAME``, default ``admin``) turn on HTTP basic authentication.
    Live parts of the pages refresh every ``poll`` seconds.
    """
    owned = oq is None
    store = oq if oq is not None else OmniQ(url, event_storage=events_url)
    d = _Dashboard(store, read_only, poll)

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await d.counts.close()
            if owned:
                await store.close()

    routes = [
        Route("/", d.overview),
        Route("/fragments/queues", d.queues_fragment),
        Route("/tasks", d.tasks),
        Route("/tasks/{task_id}", d.task),
        Route("/tasks/{task_id}/trail", d.trail),
        Route("/dead-letters", d.dead_letters),
        Route("/schedules", d.schedules),
        Route("/workers", d.workers),
        Route("/fragments/workers", d.workers_fragment),
        Route("/metrics", d.metrics),
        Route("/queues/{queue}/pause", d.pause_queue, methods=["POST"]),
        Route("/queues/{queue}/resume", d.resume_queue, methods=["POST"]),
        Route("/dead-letters/requeue", d.requeue, methods=["POST"]),
        Route("/dead-letters/purge", d.purge, methods=["POST"]),
        Route("/schedules/{schedule_id}/{op}", d.schedule_action, methods=["POST"]),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    guard = auth if auth is not None else auth_from_env()
    app = Starlette(routes=routes, middleware=[Middleware(_Guard, auth=guard)], lifespan=lifespan)
    app.state.omniq = store
    app.state.counts = d.counts
    app.state.started = time.time()
    return app
