"""Runs traced tasks under a tracer provider of its own and prints the finished spans.

A process of its own because the global tracer provider can be set once per process.
``python tracing_provider_run.py MODE``:

- ``drop``: the provider's sampler drops everything; a task that opens a span runs.
- ``parent``: ``ParentBased(ALWAYS_ON)``; tasks are enqueued under an unsampled
  remote parent, one opens a span of its own.
- ``unsampled``: ``ParentBased(ALWAYS_ON)``; tasks that enqueue a task of their own are
  enqueued under an unsampled remote parent (one with a ``tracestate``), run once as the
  provider is and once after a span processor with ``on_start`` is added.
- ``ratio0``, ``ratio1``: ``ParentBased(TraceIdRatioBased(0 or 1))``; tasks enqueued
  without tracing (no context: their runs are root spans), one opens a span.
- ``custom``: a ``ParentBased`` whose ``should_sample`` is overridden to record every run;
  tasks are enqueued under an unsampled remote parent.
- ``compare``: the default sampler; a task that opens a span, a failing task and one
  that annotates its run span run once as the provider is, then again after a span
  processor with ``on_start`` is added (which the worker's fast path leaves to
  ``Tracer.start_span``).

Prints one JSON object: ``{"phases": [[span, ...], ...], "children_sampled": [...],
"ended": [the name of every span any processor's on_end saw], "seen": [what each
enqueues_a_child run saw, ...], "asked": [the span names a custom sampler decided]}``.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import obs_tasks as ot
from opentelemetry import context, trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    Decision,
    ParentBased,
    Sampler,
    SamplingResult,
    TraceIdRatioBased,
)
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, TraceState

from omniq.core import OmniQ


class _Starts(SpanProcessor):
    """A processor that looks at spans as they start."""

    def __init__(self) -> None:
        self.started: list[str] = []

    def on_start(self, span: Any, parent_context: Context | None = None) -> None:
        self.started.append(span.name)


class _Ends(SpanProcessor):
    """A processor that sees every span handed to ``on_end``, sampled or not."""

    def __init__(self) -> None:
        self.ended: list[str] = []

    def on_end(self, span: ReadableSpan) -> None:
        self.ended.append(span.name)


class _Asks(ParentBased):
    """A sampler of its own: records every run, whatever the parent says."""

    def __init__(self) -> None:
        super().__init__(ALWAYS_ON)
        self.asked: list[str] = []

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: Any = None,
        attributes: Any = None,
        links: Any = None,
        trace_state: Any = None,
    ) -> SamplingResult:
        self.asked.append(name)
        if name == "omniq.run":
            return SamplingResult(Decision.RECORD_AND_SAMPLE, attributes)
        return super().should_sample(parent_context, trace_id, name, kind, attributes, links)


_UNSAMPLED = SpanContext(
    0x0AF7651916CD43DD8448EB211C80319C,
    0xB7AD6B7169203331,
    is_remote=True,
    trace_flags=TraceFlags(TraceFlags.DEFAULT),
)


def _enqueue_under(oq: OmniQ, parent: SpanContext, funcs: list[Any]) -> None:
    token = context.attach(trace.set_span_in_context(NonRecordingSpan(parent)))
    try:
        for func, args in funcs:
            oq.enqueue_sync(func, args, max_retries=0)
    finally:
        context.detach(token)


def _dump(span: ReadableSpan) -> dict[str, Any]:
    assert span.context is not None
    return {
        "type": type(span).__name__,
        "name": span.name,
        "kind": span.kind.name,
        "trace_id": span.context.trace_id,
        "span_id": span.context.span_id,
        "flags": int(span.context.trace_flags),
        "trace_state": span.context.trace_state.to_header(),
        "remote": span.context.is_remote,
        "parent": None
        if span.parent is None
        else [span.parent.trace_id, span.parent.span_id, span.parent.is_remote],
        "attributes": dict(span.attributes or {}),
        "events": [
            {"name": e.name, "attributes": dict(e.attributes or {}), "timed": e.timestamp > 0}
            for e in span.events
        ],
        "links": len(span.links),
        "status": [span.status.status_code.name, span.status.description],
        "scope": None
        if span.instrumentation_scope is None
        else [span.instrumentation_scope.name, span.instrumentation_scope.version],
        "resource": dict(span.resource.attributes),
        "dropped": [span.dropped_attributes, span.dropped_events, span.dropped_links],
        "timed": span.start_time is not None
        and span.end_time is not None
        and 0 < span.start_time <= span.end_time,
    }


def _run(oq: OmniQ, exporter: InMemorySpanExporter, funcs: list[Any]) -> list[dict[str, Any]]:
    exporter.clear()
    for func, args in funcs:
        oq.enqueue_sync(func, args, max_retries=0)
    oq.run_worker_sync(burst=True)
    return [_dump(s) for s in exporter.get_finished_spans()]


def main(mode: str) -> None:
    asks = _Asks()
    sampler: Sampler | None = {
        "drop": ALWAYS_OFF,
        "parent": ParentBased(ALWAYS_ON),
        "unsampled": ParentBased(ALWAYS_ON),
        "ratio0": ParentBased(TraceIdRatioBased(0.0)),
        "ratio1": ParentBased(TraceIdRatioBased(1.0)),
        "custom": asks,
        "compare": None,
    }[mode]
    provider = TracerProvider(sampler=sampler)
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    ends = _Ends()
    provider.add_span_processor(ends)
    trace.set_tracer_provider(provider)
    phases: list[list[dict[str, Any]]] = []
    if mode in ("unsampled", "custom"):
        with OmniQ("memory://", tracing=True) as oq:
            ot.QUEUE = oq
            with_state = SpanContext(
                _UNSAMPLED.trace_id,
                _UNSAMPLED.span_id,
                is_remote=True,
                trace_flags=_UNSAMPLED.trace_flags,
                trace_state=TraceState([("vendor", "v1")]),
            )
            for processor in (None, _Starts()):
                if processor is not None:  # the second phase: through Tracer.start_span
                    provider.add_span_processor(processor)
                exporter.clear()
                _enqueue_under(oq, _UNSAMPLED, [(ot.enqueues_a_child, (1,))])
                _enqueue_under(oq, with_state, [(ot.enqueues_a_child, (2,))])
                oq.run_worker_sync(queues=["default"], burst=True)
                phases.append([_dump(s) for s in exporter.get_finished_spans()])
        _print(phases, ends, asks)
        return
    if mode in ("ratio0", "ratio1"):  # tasks without a context: root runs
        url = f"file+memory://omniq-{mode}"
        with OmniQ(url) as plain:
            plain.enqueue_sync(ot.opens_a_span, (1,), max_retries=0)
            plain.enqueue_sync(ot.ok, (2,), max_retries=0)
        with OmniQ(url, tracing=True) as oq:
            oq.run_worker_sync(burst=True)
        phases.append([_dump(s) for s in exporter.get_finished_spans()])
        _print(phases, ends, asks)
        return
    with OmniQ("memory://", tracing=True, retry_delay=0.01) as oq:
        work = [(ot.opens_a_span, (1,)), (ot.boom, ())]
        if mode == "compare":
            work.append((ot.annotates, (7,)))
        if mode == "parent":
            unsampled = SpanContext(
                0x0AF7651916CD43DD8448EB211C80319C,
                0xB7AD6B7169203331,
                is_remote=True,
                trace_flags=TraceFlags(TraceFlags.DEFAULT),
            )
            token = context.attach(trace.set_span_in_context(NonRecordingSpan(unsampled)))
            try:
                for func, args in work:
                    oq.enqueue_sync(func, args, max_retries=0)
            finally:
                context.detach(token)
            exporter.clear()
            oq.run_worker_sync(burst=True)
            phases.append([_dump(s) for s in exporter.get_finished_spans()])
        else:
            phases.append(_run(oq, exporter, work))
        if mode == "compare":
            starts = _Starts()
            provider.add_span_processor(starts)
            phases.append(_run(oq, exporter, work))
            assert "omniq.run" in starts.started, starts.started
    _print(phases, ends, asks)


def _print(phases: list[list[dict[str, Any]]], ends: _Ends, asks: _Asks) -> None:
    out = {
        "phases": phases,
        "children_sampled": ot.CHILDREN_SAMPLED,
        "ended": ends.ended,
        "seen": ot.SEEN,
        "asked": asks.asked,
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1])
