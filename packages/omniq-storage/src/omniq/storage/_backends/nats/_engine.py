"""What the NATS backend's stores need from the backend that owns them."""

from __future__ import annotations

from typing import Protocol

from omniq.storage._remote import Engine
from omniq.storage._wake import Wake

from ._conn import JS

__all__ = ["NatsEngine"]


class NatsEngine(Engine, Protocol):
    """The backend as its stores see it: the JetStream helpers, the namespace's stream
    and bucket names, durable consumers on the work stream, and the wake that
    subscription callbacks feed."""

    ns: str
    replicas: int
    tasks_bucket: str
    keys_bucket: str
    results_bucket: str
    sched_bucket: str
    queues_bucket: str
    progress_bucket: str
    work_stream: str
    events_stream: str
    wake: Wake

    @property
    def js(self) -> JS: ...

    async def ensure_consumer(self, name: str, subject: str) -> None: ...
