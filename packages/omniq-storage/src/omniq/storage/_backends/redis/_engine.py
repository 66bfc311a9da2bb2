"""What the Redis backend's stores need from the backend that owns them, and the
value conversions they share."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from omniq.models import ClaimedTask
from omniq.storage._interfaces import ResultStorage
from omniq.storage._remote import Engine, EngineStore
from omniq.storage._wake import Wake

if TYPE_CHECKING:
    import redis.asyncio as aioredis
    from redis.commands.core import AsyncScript

    from ._lane import Lane

__all__ = ["RedisEngine", "RedisStore", "as_float", "as_str", "opt", "opt_repr"]


class RedisEngine(Engine, Protocol):
    """The backend as its stores see it: the client, the loaded scripts, the lane, the
    wake its pub/sub listener feeds, and the handover inboxes of its workers."""

    prefix: str
    scripts: Mapping[str, AsyncScript]
    lane: Lane | None
    wake: Wake
    inbox_channel: str
    inboxes: dict[str, tuple[Callable[[list[ClaimedTask]], None], list[str], str]]

    @property
    def redis(self) -> aioredis.Redis: ...

    @property
    def results(self) -> ResultStorage | None: ...


class RedisStore(EngineStore[RedisEngine]):
    """Base of the Redis stores: the engine plus its key prefix."""

    def __init__(self, engine: RedisEngine) -> None:
        super().__init__(engine)
        self._p = engine.prefix


def as_str(v: Any) -> str:
    """A reply value as text (bytes decoded, None as '')."""
    return v.decode() if isinstance(v, bytes) else (v or "")


def opt(v: float | None) -> str | float:
    """An optional number as a script argument ('' for None)."""
    return "" if v is None else v


def opt_repr(v: float | None) -> str:
    """An optional float as its exact text ('' for None)."""
    return "" if v is None else repr(v)


def as_float(v: bytes | None) -> float | None:
    """An optional float read back from a hash field."""
    return float(v) if v else None
