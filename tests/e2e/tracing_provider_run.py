"""Runs traced tasks under a tracer provider of its own and prints the finished spans.

A process of its own because the global tracer provider can be set once per process.
``python tracing_provider_run.py MODE``:

- ``drop``: the provider's sampler drops everything; a task that opens a span runs.
- ``parent``: ``ParentBased(ALWAYS_ON)``; tasks are enqueued under an unsampled
  remote parent, one opens a span of its own.
- ``compare``: the default sampler; a task that opens a span, a failing task and one
  that annotates its run span run once as the provider is, then again after a span
  processor with ``on_start`` is added (which the worker's fast path leaves to
  ``Tracer.start_span``).

Prints one JSON object: ``{"phases": [[span, ...], ...], "children_sampled": [...],
"ended": [the name of every span any processor's on_end saw]}``.
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
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON, ParentBased
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

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
    sampler = {"drop": ALWAYS_OFF, "parent": ParentBased(ALWAYS_ON), "compare": None}[mode]
    provider = TracerProvider(sampler=sampler)
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    ends = _Ends()
    provider.add_span_processor(ends)
    trace.set_tracer_provider(provider)
    phases = []
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
    print(
        json.dumps({"phases": phases, "children_sampled": ot.CHILDREN_SAMPLED, "ended": ends.ended})
    )


if __name__ == "__main__":
    main(sys.argv[1])
