"""OpenTelemetry traces across the queue: a producer span per enqueued task, a consumer
span per run, and the W3C trace context carried in the task between the two.

Enabled by the ``tracing`` setting (``OMNIQ_TRACING=1`` or ``OmniQ(..., tracing=True)``)
when ``opentelemetry-api`` is installed (the ``otel`` extra); without it the setting
does nothing. Spans go to whatever tracer provider the application configured (the
OpenTelemetry SDK and an exporter are the application's choice).

The context travels in ``Task.metadata[TRACE_CONTEXT_KEY]`` as the propagator's carrier
(``traceparent``, ``tracestate``, ``baggage``), so it survives every store and every
worker process. Callback tasks (``on_success``/``on_failure``) are enqueued as children
of the run that fired them.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractContextManager
from types import TracebackType
from typing import TYPE_CHECKING, Any

import msgspec

from omniq.models import Task

if TYPE_CHECKING:
    from omniq.config import Settings

__all__ = ["TRACE_CONTEXT_KEY", "Tracing", "tracing_for"]

TRACE_CONTEXT_KEY = "trace_context"
"""The ``Task.metadata`` key holding the W3C trace context of the task's enqueue."""

_log = logging.getLogger("omniq.queue")
_EMPTY: Any = None  # the empty OpenTelemetry Context, set when Tracing is first created


def tracing_for(settings: Settings) -> Tracing | None:
    """A Tracing when the ``tracing`` setting is on and opentelemetry is installed."""
    if not settings.tracing:
        return None
    try:
        return Tracing()
    except ImportError:
        _log.warning(
            "tracing is on but opentelemetry is not installed (pip install 'omniq[otel]'); "
            "no spans are recorded"
        )
        return None


class Tracing:
    """Makes the spans of one queue; implements ``omniq.workers.RunTracer`` for its pools.

    ``enqueue`` wraps a batch store call in one PRODUCER span per task and injects each
    span's context into its task; ``run`` is the CONSUMER span around one run, a child
    of the context its task carries, current while the function runs. Follow-up callbacks are
    stored with their task (in its enqueue's trace), so they need nothing here.
    """

    def __init__(self) -> None:
        from opentelemetry import context, propagate, trace
        from opentelemetry.context import Context

        global _EMPTY
        if _EMPTY is None:
            _EMPTY = Context()
        self._trace = trace
        self._context = context
        self._propagate = propagate
        self._tracer = trace.get_tracer("omniq")

    def _parent(self, task: Task) -> Any:
        """The context a task carries, or None (then the current context is used)."""
        carrier = task.metadata.get(TRACE_CONTEXT_KEY)
        if isinstance(carrier, dict) and carrier:
            return self._propagate.extract(carrier)
        return None

    async def enqueue(
        self, batch: Sequence[Task], store: Callable[[list[Task]], Awaitable[list[Task]]]
    ) -> list[Task]:
        """Store ``batch`` with ``store`` inside one producer span per task."""
        trace = self._trace
        kind = trace.SpanKind.PRODUCER
        spans = []
        out: list[Task] = []
        for task in batch:
            span = self._tracer.start_span(
                "omniq.enqueue",
                context=self._parent(task),
                kind=kind,
                attributes={
                    "messaging.system": "omniq",
                    "messaging.operation.type": "send",
                    "messaging.operation.name": "enqueue",
                    "messaging.destination.name": task.queue,
                    "messaging.message.id": task.id,
                    "omniq.task.function": task.func,
                },
            )
            carrier: dict[str, str] = {}
            self._propagate.inject(carrier, context=trace.set_span_in_context(span))
            spans.append(span)
            out.append(
                msgspec.structs.replace(
                    task, metadata={**task.metadata, TRACE_CONTEXT_KEY: carrier}
                )
            )
        try:
            stored = await store(out)
        except BaseException as exc:
            for span in spans:
                span.record_exception(exc)
                span.set_status(trace.Status(trace.StatusCode.ERROR, str(exc)))
                span.end()
            raise
        for span in spans:
            span.end()
        return stored

    def run(self, task: Task) -> AbstractContextManager[object]:
        """The consumer span of one run of ``task`` (current while the function runs;
        an exception leaving it marks the span as an error)."""
        return _RunScope(self, task)

    def _start_run(self, task: Task) -> Any:
        carrier = task.metadata.get(TRACE_CONTEXT_KEY)
        parent = self._propagate.extract(carrier) if isinstance(carrier, dict) else _EMPTY
        return self._tracer.start_span(
            "omniq.run",
            context=parent,
            kind=self._trace.SpanKind.CONSUMER,
            attributes={
                "messaging.system": "omniq",
                "messaging.operation.type": "process",
                "messaging.destination.name": task.queue,
                "messaging.message.id": task.id,
                "omniq.task.function": task.func,
                "omniq.task.attempt": task.attempt,
            },
        )


class _RunScope:
    """Makes a run's span current on the running thread/task while the function runs
    (a plain class: cheaper than a generator context manager on every run)."""

    __slots__ = ("_span", "_task", "_token", "_tracing")

    def __init__(self, tracing: Tracing, task: Task) -> None:
        self._tracing = tracing
        self._task = task

    def __enter__(self) -> object:
        tracing = self._tracing
        span = self._span = tracing._start_run(self._task)
        self._token = tracing._context.attach(tracing._trace.set_span_in_context(span))
        return span

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        span = self._span
        if exc is not None:
            trace = self._tracing._trace
            span.record_exception(exc)
            span.set_status(trace.Status(trace.StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
        self._tracing._context.detach(self._token)
        span.end()
