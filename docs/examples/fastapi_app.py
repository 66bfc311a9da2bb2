"""A FastAPI application that enqueues from a handler and polls the result.

Run it with ``uvicorn fastapi_app:app --app-dir docs/examples``; the worker runs in the
same process (``worker=True``), the tasks are stored in ``$APP_DB`` (SQLite).
"""

from __future__ import annotations

import os
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException

from omniq.contrib.fastapi import get_omniq, omniq_lifespan
from omniq.core import OmniQ


def add(a: int, b: int) -> int:
    """The task: runs in the worker."""
    return a + b


def make_omniq() -> OmniQ:
    return OmniQ(f"sqlite:///{os.environ.get('APP_DB', 'app.db')}")


Queue = Annotated[OmniQ, Depends(get_omniq)]

app = FastAPI(lifespan=omniq_lifespan(make_omniq, worker=True))


@app.post("/add")
async def enqueue_add(a: int, b: int, oq: Queue) -> dict[str, str]:
    task = await oq.enqueue(add, (a, b))
    return {"id": task.id}


@app.get("/tasks/{task_id}")
async def task_status(task_id: str, oq: Queue) -> dict[str, Any]:
    task = await oq.get_task(task_id)
    if task is None:
        raise HTTPException(404, "no such task")
    result = await oq.get_result(task_id)
    return {
        "status": task.status.value,
        "result": None if result is None else result.value,
    }
