"""Helpers shared by the networked backends (PostgreSQL, Redis, NATS JetStream).

Envelope encoding (msgpack via msgspec), URL option parsing, task state copies, and
the base class of every engine's storage wrappers.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Generic, Protocol, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import msgspec

from omniq.models import ClaimedTask, Task, TaskStatus

from ._codec import (
    decode_event,
    decode_result,
    decode_schedule,
    decode_task,
    encode,
    encode_event,
)

__all__ = [
    "HANDOVER_REGISTRATION",
    "Engine",
    "EngineStore",
    "claimed",
    "decode_event",
    "decode_result",
    "decode_schedule",
    "decode_task",
    "encode",
    "encode_event",
    "split_hosts",
    "split_options",
    "with_state",
    "with_state_eta",
]

T = TypeVar("T")

HANDOVER_REGISTRATION = 2.0
"""Longest idle registration of a worker waiting for handovers (seconds, plus 1 s of
grace), on every engine that hands over: a waiting worker registers again at least
this often, and one that died stops getting handovers soon."""


def with_state(task: Task, status: str | TaskStatus, attempt: int) -> Task:
    """A copy of ``task`` carrying the store's current status and attempt."""
    st = status if isinstance(status, TaskStatus) else TaskStatus(status)
    if task.status is st and task.attempt == attempt:
        return task
    return msgspec.structs.replace(task, status=st, attempt=attempt)


def with_state_eta(task: Task, status: str | TaskStatus, attempt: int, eta: float | None) -> Task:
    """Like ``with_state``, also carrying the current eta (a retry moves it)."""
    st = status if isinstance(status, TaskStatus) else TaskStatus(status)
    if task.status is st and task.attempt == attempt and task.eta == eta:
        return task
    return msgspec.structs.replace(task, status=st, attempt=attempt, eta=eta)


def claimed(task: Task, token: str, until: float, worker_id: str) -> ClaimedTask:
    return ClaimedTask(task=task, token=token, lease_expires_at=until, worker_id=worker_id)


def split_options(url: str, names: Iterable[str]) -> tuple[str, dict[str, str]]:
    """Remove OmniQ's own query parameters (``names``) from ``url``; returns the cleaned
    URL for the driver and the removed options."""
    parts = urlsplit(url)
    wanted = set(names)
    mine: dict[str, str] = {}
    rest: list[tuple[str, str]] = []
    for k, v in parse_qsl(parts.query, keep_blank_values=True):
        if k in wanted:
            mine[k] = v
        else:
            rest.append((k, v))
    cleaned = urlunsplit(parts._replace(query=urlencode(rest)))
    if not parts.netloc and url.lower().startswith(f"{parts.scheme}://"):
        # urlunsplit writes unix:/path for an empty host; drivers want unix:///path back
        cleaned = f"{parts.scheme}://{cleaned.partition(':')[2]}"
    return cleaned, mine


E = TypeVar("E", bound="Engine")


class Engine(Protocol):
    """What a networked engine's stores need from their backend: one call wrapper that
    maps the driver's connection failures to ``BackendUnavailableError``."""

    async def call(self, fn: Callable[..., Awaitable[T]], /) -> T: ...


class EngineStore(Generic[E]):
    """Base of every networked engine's storage wrappers (task queue, results, events,
    schedules): holds the engine context they share and runs driver calls through it."""

    def __init__(self, engine: E) -> None:
        self._be = engine

    async def _call(self, fn: Callable[..., Awaitable[T]]) -> T:
        return await self._be.call(fn)


def split_hosts(url: str) -> list[str]:
    """One URL per server of a multi-host URL (``nats://u@a:1,b:2,c:3/x?q``, or each
    item with its own scheme): the scheme, credentials, path and query of the first
    item go to every server that has none of its own. A one-host URL comes back alone."""
    scheme, sep, rest = url.partition("://")
    if not sep or "," not in rest:
        return [url]
    if "://" in rest:  # every item a full URL
        return [u for u in url.split(",") if u]
    cut = min((i for i in (rest.find("/"), rest.find("?")) if i >= 0), default=len(rest))
    hosts, tail = rest[:cut], rest[cut:]
    auth = ""
    items = [h for h in hosts.split(",") if h]
    if items and "@" in items[0]:
        auth, _, items[0] = items[0].rpartition("@")
        auth += "@"
    out = []
    for item in items:
        if "@" in item:
            out.append(f"{scheme}://{item}{tail}")
        else:
            out.append(f"{scheme}://{auth}{item}{tail}")
    return out
