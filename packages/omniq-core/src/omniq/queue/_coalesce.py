"""Coalescing of concurrent single-task enqueues into one storage call.

Why: a web server enqueues one task per request, from many requests at once. Each
``enqueue`` alone is one round trip to the store; enqueues issued while another is in
flight are gathered until the end of the event-loop turn and stored by one call, so
concurrent callers share round trips while a lone caller pays nothing extra (it is sent
at once when nothing else is pending or in flight).

Each caller awaits its own future and gets its own stored Task, in call order within the
batch. Checks that can fail for one task alone (payload size) run before the task joins
a batch, so a bad task fails only its own caller; a failure of the storage call itself
(the store unreachable) is raised to every caller of that batch.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from omniq.models import Task

__all__ = ["Coalescer"]

Store = Callable[[list[Task]], Awaitable[list[Task]]]


class Coalescer:
    """Stores single tasks through ``store``; concurrent ones share a call."""

    def __init__(self, store: Store, check: Callable[[Task], None]) -> None:
        self._store = store
        self._check = check
        """Raises for a task the store would refuse alone (run before it joins a batch)."""
        self._pending: list[tuple[Task, asyncio.Future[Task]]] = []
        self._inflight = 0
        self._flushes: set[asyncio.Task[None]] = set()

    async def enqueue(self, task: Task) -> Task:
        """Store one task; returns it as stored."""
        if not self._inflight and not self._pending:
            self._inflight += 1
            try:
                return (await self._store([task]))[0]
            finally:
                self._inflight -= 1
        self._check(task)
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Task] = loop.create_future()
        if not self._pending:
            loop.call_soon(self._flush)
        self._pending.append((task, fut))
        return await fut

    def _flush(self) -> None:
        batch, self._pending = self._pending, []
        flush = asyncio.get_running_loop().create_task(self._run(batch))
        self._flushes.add(flush)
        flush.add_done_callback(self._flushes.discard)

    async def _run(self, batch: list[tuple[Task, asyncio.Future[Task]]]) -> None:
        self._inflight += 1
        try:
            stored = await self._store([t for t, _ in batch])
        except Exception as exc:  # every caller of the batch gets the failure
            for _, fut in batch:
                if not fut.done():
                    fut.set_exception(exc)
            return
        except BaseException:
            for _, fut in batch:
                fut.cancel()
            raise
        finally:
            self._inflight -= 1
        for (_, fut), got in zip(batch, stored, strict=True):
            if not fut.done():  # a caller may have been cancelled meanwhile
                fut.set_result(got)
