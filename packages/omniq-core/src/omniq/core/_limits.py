"""Flow limits seen from the ``OmniQ`` facade (async + ``_sync``): each limit key's
running count and remaining rate budget, as the task store reports them.

The limits themselves are task options (``rate_limit``, ``max_concurrency``,
``limit_key``); every engine enforces them inside its claim, across all workers.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from omniq.models import LimitInfo

from ._session import Session

__all__ = ["LimitOps"]

T = TypeVar("T")


class LimitOps:
    """``list_limits``: the flow-limit keys of the task store."""

    if TYPE_CHECKING:

        async def _call(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T: ...

        def _call_sync(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T: ...

    async def list_limits(self) -> list[LimitInfo]:
        """Every limit key with tasks stored under it, by key: tasks running under live
        leases, the cap, the rate and how many more starts its window allows now."""
        return await self._call(_list)

    def list_limits_sync(self) -> list[LimitInfo]:
        return self._call_sync(_list)


async def _list(session: Session) -> list[LimitInfo]:
    return await session.queue.tasks.list_limits()
