"""omniq.web: the OmniQ dashboard, a Starlette ASGI app.

``create_app(url=..., read_only=..., auth=...)`` returns the app: overview of the
queues, tasks with filters and keyset paging, a task's detail and event trail, dead
letters, schedules, live workers, and ``/metrics`` for Prometheus. ``omniq web`` serves
it; ``app.mount("/omniq", create_app(...))`` puts it inside a FastAPI/Starlette app.
"""

from __future__ import annotations

from omniq.models.lowlevel import publish

from ._app import create_app
from ._metrics import StoreSnapshot
from ._security import AuthCheck, BasicAuth

__all__ = ["AuthCheck", "BasicAuth", "StoreSnapshot", "create_app"]

publish(globals())
del publish
