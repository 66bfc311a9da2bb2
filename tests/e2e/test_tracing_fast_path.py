"""The worker's span for a run whose task carries an unsampled ``traceparent`` that the
SDK's ``ParentBased`` sampler drops (``LeanRuns.unsampled``), or no context and a new
root trace its ratio drops (``LeanRuns.root``): the same span context as
``Tracer.start_span`` gives, current while the run runs, the caller's context back after.

The provider here is never made the global one: ``LeanRuns`` is built for it directly.
"""

from __future__ import annotations

import threading

import pytest
from opentelemetry import context, trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased, TraceIdRatioBased
from opentelemetry.trace import NonRecordingSpan
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from omniq.models import Task
from omniq.queue._tracing import _UNSAMPLED
from omniq.queue._tracing_sdk import LeanRuns, UnsampledRoot

TRACE = "0af7651916cd43dd8448eb211c80319c"
SPAN = "b7ad6b7169203331"


def _lean() -> LeanRuns:
    lean = LeanRuns.for_provider(TracerProvider(sampler=ParentBased(ALWAYS_ON)))
    assert lean is not None and lean.drops_unsampled
    return lean


@pytest.mark.parametrize("flags", ["00", "02"])
def test_the_span_context_is_the_one_start_span_gives(flags: str) -> None:
    tp = f"00-{TRACE}-{SPAN}-{flags}"
    provider = TracerProvider(sampler=ParentBased(ALWAYS_ON))
    parent = TraceContextTextMapPropagator().extract({"traceparent": tp})
    expected = provider.get_tracer("omniq").start_span("omniq.run", context=parent)
    run = _lean().unsampled(tp)
    assert run is not None
    with run as span:
        assert isinstance(span, NonRecordingSpan)
        assert not span.is_recording()
        got = span.get_span_context()
        want = expected.get_span_context()
        assert type(expected) is NonRecordingSpan
        assert (got.trace_id, got.is_remote, got.trace_flags, got.trace_state) == (
            want.trace_id,
            want.is_remote,
            want.trace_flags,
            want.trace_state,
        )
        assert got.is_valid
        assert got.span_id not in (0, int(SPAN, 16))
        assert span.get_span_context() is got  # built once


def test_the_run_span_is_current_inside_and_the_context_is_restored() -> None:
    outer = NonRecordingSpan(
        trace.SpanContext(1, 2, is_remote=False, trace_flags=trace.TraceFlags(1))
    )
    token = context.attach(context.set_value("app.key", "kept", trace.set_span_in_context(outer)))
    try:
        run = _lean().unsampled(f"00-{TRACE}-{SPAN}-00")
        assert run is not None
        with pytest.raises(ValueError, match="boom"), run as span:
            assert trace.get_current_span() is span
            assert context.get_value("app.key") == "kept"  # the rest of the context stays
            with span:  # a span's own ``with`` inside the run changes nothing
                assert trace.get_current_span() is span
            assert trace.get_current_span() is span
            raise ValueError("boom")
        assert trace.get_current_span() is outer
        assert context.get_value("app.key") == "kept"
    finally:
        context.detach(token)


@pytest.mark.parametrize(
    "tp",
    [
        f"00-{TRACE}-{SPAN}-00",
        f"00-{TRACE}-{SPAN}-02",
        f"00-{TRACE}-{SPAN}-0a",
        f"00-{TRACE}-{SPAN}-01",  # sampled
        f"00-{TRACE}-{SPAN}-03",
        f"00-{'0' * 32}-{SPAN}-00",  # invalid ids
        f"00-{TRACE}-{'0' * 16}-00",
        f"00-{TRACE.upper()}-{SPAN}-00",  # not as the propagator accepts it
        f"00-{TRACE}-{SPAN}-00-extra",
        f"01-{TRACE}-{SPAN}-00",  # another version: the propagator reads it
        f"00-{TRACE[:-1]}-{SPAN}-00",
    ],
)
def test_the_fast_path_takes_only_what_the_propagator_reads_as_unsampled(tp: str) -> None:
    """A traceparent the fast path takes is one the W3C propagator reads as a valid,
    unsampled parent with the same ids; anything else goes the propagator's way."""
    sc = trace.get_current_span(
        TraceContextTextMapPropagator().extract({"traceparent": tp})
    ).get_span_context()
    if _UNSAMPLED.fullmatch(tp) is not None:
        assert sc.is_valid and sc.is_remote and not sc.trace_flags.sampled
        assert (f"{sc.trace_id:032x}", f"{sc.span_id:016x}") == (tp[3:35], tp[36:52])
    else:
        assert not (sc.is_valid and not sc.trace_flags.sampled and tp.startswith("00-"))


def test_threads_asking_at_once_see_one_span_id() -> None:
    run = _lean().unsampled(f"00-{TRACE}-{SPAN}-00")
    assert run is not None
    start = threading.Barrier(8)
    seen: list[int] = []

    def ask() -> None:
        start.wait()
        seen.append(run.get_span_context().span_id)

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(seen) == 8 and len(set(seen)) == 1


class _Ids(RandomIdGenerator):
    """Ids in a known order: trace ids 1, 2, ...; span ids 100, 101, ..."""

    def __init__(self) -> None:
        self.traces = iter(range(1, 1000))
        self.spans = iter(range(100, 1000))

    def generate_trace_id(self) -> int:
        return next(self.traces)

    def generate_span_id(self) -> int:
        return next(self.spans)


def _root_provider(ratio: float) -> TracerProvider:
    return TracerProvider(sampler=ParentBased(TraceIdRatioBased(ratio)), id_generator=_Ids())


def test_a_dropped_root_run_is_the_span_start_span_gives() -> None:
    expected = _root_provider(0.0).get_tracer("omniq").start_span("omniq.run", context=Context())
    lean = LeanRuns.for_provider(_root_provider(0.0))
    assert lean is not None and lean.decides_roots
    run = lean.root()
    assert isinstance(run, UnsampledRoot)
    with run as span:
        assert trace.get_current_span() is span
        assert not span.is_recording()
        assert span.get_span_context() == expected.get_span_context()  # same ids and flags
    assert trace.get_current_span() is not span


def test_a_sampled_root_run_is_recorded_in_the_trace_its_ratio_saw() -> None:
    lean = LeanRuns.for_provider(_root_provider(1.0))
    assert lean is not None
    drawn = lean.root()
    assert drawn == (1, True)  # the first trace id; the ratio samples it
    task = Task(func="m:f", queue="q")
    span = lean.start(task, Context(), drawn)
    assert span.is_recording()
    sc = span.get_span_context()
    assert sc.trace_id == 1 and sc.trace_flags.sampled
    span.end()
