"""MemoryOmniQ: an OmniQ on ``memory://`` with its own manual clock and assertions about
what was enqueued."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from omniq.core import OmniQ
from omniq.models import ManualClock, Task, TaskStatus, get_clock, set_clock
from omniq.queue import TaskSpec
from omniq.serialization import SerializationManager

__all__ = ["ANY", "MemoryOmniQ"]

_PAGE = 500


class _Any:
    """Matches every value (the default of ``assert_enqueued``'s filters)."""

    def __repr__(self) -> str:
        return "ANY"


ANY: Final[Any] = _Any()
"""Placeholder for "whatever it was" in ``assert_enqueued`` (its default filters)."""


class MemoryOmniQ(OmniQ):
    """An ``OmniQ`` whose task queue, results and events live in memory, for tests.

    It installs ``clock`` (a fresh ``ManualClock`` at the wall clock's time unless given)
    as OmniQ's process-wide clock until it is closed, so etas, retry backoffs, TTLs and
    schedules follow ``clock.advance``/``clock.set`` and nothing waits for real time.
    Settings come from ``overrides`` only, not from the ``OMNIQ_*`` environment (pass
    ``env`` to use one). ``inline=True`` runs each task at enqueue (see ``OmniQ``).
    """

    def __init__(
        self,
        *,
        clock: ManualClock | None = None,
        inline: bool = False,
        env: Mapping[str, str] | None = None,
        **overrides: Any,
    ) -> None:
        super().__init__(
            "memory://",
            "memory://",
            "memory://",
            env={} if env is None else env,
            inline=inline,
            **overrides,
        )
        self.clock: ManualClock = clock if clock is not None else ManualClock()
        """The clock this OmniQ's time follows (installed while it is open)."""
        self._decoder: SerializationManager | None = None
        self._clock_installed = get_clock() is not self.clock
        self._previous_clock = set_clock(self.clock) if self._clock_installed else None

    def _restore_clock(self) -> None:
        if self._clock_installed and get_clock() is self.clock:
            set_clock(self._previous_clock)
        self._clock_installed = False

    async def close(self) -> None:
        """Close the stores and put back the clock that was installed before."""
        try:
            await super().close()
        finally:
            self._restore_clock()

    def close_sync(self) -> None:
        """Blocking ``close``."""
        try:
            super().close_sync()
        finally:
            self._restore_clock()

    # -- what was enqueued ----------------------------------------------------------------

    async def enqueued(
        self, func: TaskSpec | None = None, *, status: TaskStatus | str | None = None
    ) -> list[Task]:
        """Every task stored so far (whatever became of it), oldest first; only those of
        ``func`` (a callable or ``"module:qualname"``) and ``status`` when given."""
        path = None if func is None else self.build(func).func
        out: list[Task] = []
        offset = 0
        while True:
            page = await self.list_tasks(status=status, limit=_PAGE, offset=offset)
            out.extend(t for t in page if path is None or t.func == path)
            if len(page) < _PAGE:
                return out
            offset += _PAGE

    def enqueued_sync(
        self, func: TaskSpec | None = None, *, status: TaskStatus | str | None = None
    ) -> list[Task]:
        """Blocking ``enqueued``."""
        path = None if func is None else self.build(func).func
        out: list[Task] = []
        offset = 0
        while True:
            page = self.list_tasks_sync(status=status, limit=_PAGE, offset=offset)
            out.extend(t for t in page if path is None or t.func == path)
            if len(page) < _PAGE:
                return out
            offset += _PAGE

    async def assert_enqueued(
        self,
        func: TaskSpec,
        args: Sequence[Any] = ANY,
        kwargs: Mapping[str, Any] = ANY,
        *,
        queue: str = ANY,
        count: int | None = None,
    ) -> list[Task]:
        """Assert that ``func`` was enqueued with these ``args``/``kwargs`` on ``queue``
        (each defaults to ``ANY``): exactly ``count`` times, or at least once when
        ``count`` is None. Returns the matching tasks; the AssertionError lists what
        was enqueued instead."""
        __tracebackhide__ = True
        return self._check(
            func, await self.enqueued(), args=args, kwargs=kwargs, queue=queue, count=count
        )

    def assert_enqueued_sync(
        self,
        func: TaskSpec,
        args: Sequence[Any] = ANY,
        kwargs: Mapping[str, Any] = ANY,
        *,
        queue: str = ANY,
        count: int | None = None,
    ) -> list[Task]:
        """Blocking ``assert_enqueued``."""
        __tracebackhide__ = True
        return self._check(
            func, self.enqueued_sync(), args=args, kwargs=kwargs, queue=queue, count=count
        )

    def _check(
        self,
        func: TaskSpec,
        tasks: list[Task],
        *,
        args: Sequence[Any],
        kwargs: Mapping[str, Any],
        queue: str,
        count: int | None,
    ) -> list[Task]:
        __tracebackhide__ = True
        path = self.build(func).func
        want_args = ANY if args is ANY else list(args)
        want_kwargs = ANY if kwargs is ANY else dict(kwargs)
        matches: list[Task] = []
        for task in tasks:
            if task.func != path or (queue is not ANY and task.queue != queue):
                continue
            got_args, got_kwargs = self._call_of(task)
            if want_args is not ANY and list(got_args) != want_args:
                continue
            if want_kwargs is not ANY and got_kwargs != want_kwargs:
                continue
            matches.append(task)
        if (count is None and matches) or len(matches) == count:
            return matches
        expected = _describe_call(path, args, kwargs, queue)
        times = "at least once" if count is None else _times(count)
        lines = [f"expected {expected} to be enqueued {times}, found {_times(len(matches))}"]
        if tasks:
            lines.append(f"enqueued ({len(tasks)}):")
            lines += [f"  {self._describe(t)}" for t in tasks]
        else:
            lines.append("nothing was enqueued")
        raise AssertionError("\n".join(lines))

    def _call_of(self, task: Task) -> tuple[tuple[Any, ...], dict[str, Any]]:
        if task.payload is None:
            return (), {}
        if self._decoder is None:
            self._decoder = SerializationManager.from_settings(self.settings)
        return self._decoder.loads_call(task.payload)

    def _describe(self, task: Task) -> str:
        args, kwargs = self._call_of(task)
        return f"{_describe_call(task.func, args, kwargs, task.queue)} [{task.status}]"


def _describe_call(path: str, args: Any, kwargs: Any, queue: Any) -> str:
    parts: list[str] = []
    if args is ANY:
        parts.append("*ANY")
    else:
        parts += [repr(a) for a in args]
    if kwargs is ANY:
        parts.append("**ANY")
    else:
        parts += [f"{k}={v!r}" for k, v in dict(kwargs).items()]
    where = "" if queue is ANY else f" on queue {queue!r}"
    return f"{path}({', '.join(parts)}){where}"


def _times(n: int) -> str:
    return "once" if n == 1 else "never" if n == 0 else f"{n} times"
