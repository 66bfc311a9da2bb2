"""omniq.core: the ``OmniQ`` facade.

``OmniQ(task_queue=..., result_storage=..., event_storage=..., **overrides)`` composes
the task queue, result store, event log and workers; every operation is
``async def name(...)`` with a blocking ``name_sync(...)`` twin. The ``omniq`` command
line is ``omniq.core.cli`` (its ``app`` and ``main``).
"""

from __future__ import annotations

from omniq.models.lowlevel import publish

# The running task's context is defined below core (the worker pool sets it); it is
# re-exported here with the rest of the facade's API.
from omniq.workers import TaskContext, current_task

from ._dead_letters import DeadLetter
from ._facade import OmniQ
from ._metrics import metrics_registry
from ._taskfn import TaskFunction
from ._urls import default_url, resolve_urls
from ._worker import WorkerHandle

__all__ = [
    "DeadLetter",
    "OmniQ",
    "TaskContext",
    "TaskFunction",
    "WorkerHandle",
    "current_task",
    "default_url",
    "metrics_registry",
    "resolve_urls",
]

# Show public names as omniq.core.X so the private modules can move freely.
publish(globals())
del publish
