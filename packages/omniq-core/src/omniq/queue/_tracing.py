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
import re
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractContextManager
from types import TracebackType
from typing import TYPE_CHECKING, Any, cast

import msgspec

from omniq.models import Task

if TYPE_CHECKING:
    from omniq.config import Settings

__all__ = ["TRACE_CONTEXT_KEY", "Tracing", "tracing_for"]

TRACE_CONTEXT_KEY = "trace_context"
"""The ``Task.metadata`` key holding the W3C trace context of the task's enqueue."""

_log = logging.getLogger("omniq.queue")
_EMPTY: Any = None  # the empty OpenTelemetry Context, set when Tracing is first created

_TRACEPARENT = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
"""A version-00 ``traceparent`` exactly as the W3C propagator writes it."""
_UNSAMPLED = re.compile(r"00-(?!0{32})[0-9a-f]{32}-(?!0{16})[0-9a-f]{16}-[0-9a-f][02468ace]")
"""The same, valid (ids not all zero), with the sampled flag clear."""


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

    While the global propagator is OpenTelemetry's default (W3C trace context and
    baggage), a carrier holding nothing but a plain ``traceparent`` is read and written
    directly, with the result the propagator would give; anything else (a
    ``tracestate``, baggage, another propagator) goes through the propagator.
    """

    def __init__(self) -> None:
        from opentelemetry import baggage, context, propagate, trace
        from opentelemetry.baggage.propagation import W3CBaggagePropagator
        from opentelemetry.context import Context
        from opentelemetry.propagators.composite import CompositePropagator
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        global _EMPTY
        if _EMPTY is None:
            _EMPTY = Context()
        self._trace = trace
        self._context = context
        self._propagate = propagate
        self._baggage = baggage
        self._tracer = trace.get_tracer("omniq")
        self._default_types: tuple[type, ...] = (
            CompositePropagator,
            TraceContextTextMapPropagator,
            W3CBaggagePropagator,
        )
        self._textmap: Any = None  # the global propagator last looked at
        self._w3c = False  # whether it is the default one
        self._consumer = trace.SpanKind.CONSUMER
        self._producer = trace.SpanKind.PRODUCER
        self._span_context = trace.SpanContext
        self._non_recording = trace.NonRecordingSpan
        self._flags = trace.TraceFlags
        self._in_context = trace.set_span_in_context
        self._provider: Any = None  # the global tracer provider last looked at
        self._lean: Any = None  # its LeanRuns, when the run span can skip start_span
        self._globals = hasattr(trace, "_TRACER_PROVIDER") and hasattr(
            propagate, "_HTTP_TEXT_FORMAT"
        )  # what ``run`` reads for the provider and the propagator

    def _is_w3c(self) -> bool:
        """Whether the global propagator is OpenTelemetry's default one (checked again
        only when the application sets another)."""
        textmap = self._propagate.get_global_textmap()
        if textmap is not self._textmap:
            composite, tracecontext, w3c_baggage = self._default_types
            inner = getattr(textmap, "_propagators", None)
            self._w3c = (
                type(textmap) is composite
                and isinstance(inner, (list, tuple))
                and [type(p) for p in inner] == [tracecontext, w3c_baggage]
            )
            self._textmap = textmap
        return self._w3c

    def _plain(self, carrier: dict[str, Any]) -> tuple[int, int, int] | None:
        """(trace id, span id, flags) of a carrier holding nothing but a valid plain
        ``traceparent`` under the default propagator, else None."""
        if len(carrier) == 1 and self._is_w3c():
            traceparent = carrier.get("traceparent")
            if type(traceparent) is str and len(traceparent) == 55:
                m = _TRACEPARENT.fullmatch(traceparent)
                if m is not None:
                    trace_id, span_id = int(m[1], 16), int(m[2], 16)
                    if trace_id and span_id:
                        return trace_id, span_id, int(m[3], 16)
        return None

    def _remote(self, trace_id: int, span_id: int, flags: int) -> Any:
        """The context the propagator extracts from a plain ``traceparent``."""
        parent = self._span_context(
            trace_id, span_id, is_remote=True, trace_flags=self._flags(flags)
        )
        return self._in_context(self._non_recording(parent), _EMPTY)

    def _extract(self, carrier: dict[str, Any]) -> Any:
        """The context ``carrier`` holds, as ``propagate.extract(carrier)`` reads it."""
        plain = self._plain(carrier)
        if plain is not None:
            return self._remote(*plain)
        return self._propagate.extract(carrier)

    def _parent(self, task: Task) -> Any:
        """The context a task carries, or None (then the current context is used)."""
        carrier = task.metadata.get(TRACE_CONTEXT_KEY)
        if isinstance(carrier, dict) and carrier:
            return self._extract(carrier)
        return None

    async def enqueue(
        self, batch: Sequence[Task], store: Callable[[list[Task]], Awaitable[list[Task]]]
    ) -> list[Task]:
        """Store ``batch`` with ``store`` inside one producer span per task."""
        trace = self._trace
        kind = self._producer
        tracer = self._tracer
        # the current context's own baggage would go into every carrier: then the
        # propagator writes them
        plain = self._is_w3c() and not self._baggage.get_all()
        spans = []
        out: list[Task] = []
        for task in batch:
            parent = self._parent(task)
            span = tracer.start_span(
                "omniq.enqueue",
                context=parent,
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
            sc = span.get_span_context()
            carrier: dict[str, str]
            if plain and parent is None and sc.is_valid and not sc.trace_state:
                carrier = {
                    "traceparent": f"00-{sc.trace_id:032x}-{sc.span_id:016x}-{sc.trace_flags:02x}"
                }
            else:
                carrier = {}
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
        carrier = task.metadata.get(TRACE_CONTEXT_KEY)
        if type(carrier) is dict and len(carrier) == 1:
            # The common case under sampling: a plain unsampled traceparent, which an
            # SDK sampler that drops the runs of unsampled tasks decides on its own.
            tp = carrier.get("traceparent")
            if type(tp) is str and self._globals and _UNSAMPLED.fullmatch(tp) is not None:
                lean = self._current_lean()
                if (
                    lean is not None
                    and lean.drops_unsampled
                    and (
                        self._w3c
                        if self._propagate._HTTP_TEXT_FORMAT is self._textmap
                        else self._is_w3c()
                    )
                ):
                    scope: AbstractContextManager[object] | None = lean.unsampled(tp)
                    if scope is not None:
                        return scope
        elif not carrier and self._globals:
            # No context: a root run, which a ratio sampler decides on the new trace id.
            lean = self._current_lean()
            if lean is not None and lean.decides_roots:
                got = lean.root()
                if type(got) is tuple:
                    return _RunScope(self, task, got)
                if got is not None:
                    return cast("AbstractContextManager[object]", got)
        return _RunScope(self, task)

    def _current_lean(self) -> Any:
        """``_lean_runs()``, its checks made on the globals ``get_tracer_provider``
        returns (this runs for every task)."""
        lean = self._lean
        if (
            lean is None
            or self._trace._TRACER_PROVIDER is not self._provider
            or lean._processors is not lean._processor._span_processors
        ):
            lean = self._lean_runs()
        return lean

    def _lean_runs(self) -> Any:
        """The SDK fast path for run spans, or None (checked again only when the global
        provider changes or a span processor is added)."""
        provider = self._trace.get_tracer_provider()
        lean = self._lean
        if provider is not self._provider or (lean is not None and not lean.current()):
            lean = None
            if type(provider).__module__ == "opentelemetry.sdk.trace":
                try:
                    from omniq.queue._tracing_sdk import LeanRuns
                except ImportError:  # an SDK without the parts the fast path uses
                    pass
                else:
                    lean = LeanRuns.for_provider(provider)
            self._provider = provider
            self._lean = lean
        return lean

    def _start_run(self, task: Task, root: tuple[int, bool] | None = None) -> Any:
        carrier = task.metadata.get(TRACE_CONTEXT_KEY)
        lean = self._lean_runs()
        parent = _EMPTY
        if isinstance(carrier, dict) and carrier:
            plain = self._plain(carrier)
            parent = self._propagate.extract(carrier) if plain is None else self._remote(*plain)
        span = None if lean is None else lean.start(task, parent, root)
        if span is None:
            span = self._start_span(task, parent)
        return span

    def _start_span(self, task: Task, parent: Any) -> Any:
        return self._tracer.start_span(
            "omniq.run",
            context=parent,
            kind=self._consumer,
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

    __slots__ = ("_root", "_span", "_task", "_token", "_tracing")

    def __init__(self, tracing: Tracing, task: Task, root: tuple[int, bool] | None = None) -> None:
        self._tracing = tracing
        self._task = task
        self._root = root  # a root run's trace, drawn already (``LeanRuns.root``)

    def __enter__(self) -> object:
        tracing = self._tracing
        span = self._span = tracing._start_run(self._task, self._root)
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
