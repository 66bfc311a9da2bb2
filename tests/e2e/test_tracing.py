"""OpenTelemetry traces across the queue, checked with the SDK's in-memory exporter.

A request span (what a web handler would open) encloses the enqueue; the trace must
follow it through the store into the run, into spans the task opens itself, and into
the callbacks and dependents the run releases, on every backend.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import obs_tasks as ot
import pytest
from opentelemetry import context, propagate, trace
from opentelemetry.context import Context
from opentelemetry.propagators.textmap import (
    CarrierT,
    Getter,
    Setter,
    TextMapPropagator,
    default_getter,
    default_setter,
)
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import (
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    StatusCode,
    TraceFlags,
    TraceState,
)

from omniq.core import OmniQ
from omniq.models import TaskStatus
from omniq.queue import TRACE_CONTEXT_KEY

_EXPORTER = InMemorySpanExporter()


def _install() -> None:
    """One SDK provider for the whole test process (the global can be set once)."""
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    provider.add_span_processor(SimpleSpanProcessor(_EXPORTER))


_install()


@pytest.fixture
def spans() -> Iterator[Callable[[], list[ReadableSpan]]]:
    _EXPORTER.clear()
    yield lambda: list(_EXPORTER.get_finished_spans())
    _EXPORTER.clear()


def _one(spans: list[ReadableSpan], name: str, **attrs: object) -> ReadableSpan:
    found = [
        s
        for s in spans
        if s.name == name
        and all(s.attributes is not None and s.attributes.get(k) == v for k, v in attrs.items())
    ]
    assert len(found) == 1, f"{name} {attrs}: {[(s.name, s.attributes) for s in spans]}"
    return found[0]


def _parent_of(child: ReadableSpan, parent: ReadableSpan) -> bool:
    assert child.parent is not None and child.context is not None and parent.context is not None
    return (
        child.parent.span_id == parent.context.span_id
        and child.context.trace_id == parent.context.trace_id
    )


@pytest.mark.anyio
async def test_a_trace_follows_a_request_through_the_queue_into_callbacks(
    make_oq: Callable[..., OmniQ], spans: Callable[[], list[ReadableSpan]]
) -> None:
    async with make_oq(tracing=True) as oq:
        with trace.get_tracer("web").start_as_current_span("GET /order") as request:
            first = await oq.enqueue(ot.traced_work, (21,), on_success=oq.build(ot.notify, (1,)))
            after = await oq.enqueue(ot.ok, (5,), depends_on=first)
        stored = await oq.get_task(first.id)
        assert stored is not None and "traceparent" in stored.metadata[TRACE_CONTEXT_KEY]
        await oq.run_worker(burst=True)
        assert (await oq.get_result(after.id)).status is TaskStatus.SUCCESS  # type: ignore[union-attr]
    got = spans()
    req = _one(got, "GET /order")
    assert req.context is not None and request.get_span_context().trace_id == req.context.trace_id
    produce = _one(got, "omniq.enqueue", **{"messaging.message.id": first.id})
    assert produce.kind is SpanKind.PRODUCER and _parent_of(produce, req)
    assert produce.attributes is not None
    assert produce.attributes["messaging.destination.name"] == "default"
    assert produce.attributes["omniq.task.function"] == first.func
    run = _one(got, "omniq.run", **{"messaging.message.id": first.id})
    assert run.kind is SpanKind.CONSUMER and _parent_of(run, produce)
    assert run.status.status_code is not StatusCode.ERROR
    work = _one(got, "app.work")
    assert _parent_of(work, run)  # a span opened inside the task is the run's child
    # the on_success callback: stored with its task in the request, then run in that trace
    callback_id = first.on_success[0].id
    cb_produce = _one(got, "omniq.enqueue", **{"messaging.message.id": callback_id})
    assert _parent_of(cb_produce, req)
    cb_run = _one(got, "omniq.run", **{"messaging.message.id": callback_id})
    assert _parent_of(cb_run, cb_produce)
    # the dependent, enqueued in the same request, runs in that trace
    dep_produce = _one(got, "omniq.enqueue", **{"messaging.message.id": after.id})
    assert _parent_of(dep_produce, req)
    dep_run = _one(got, "omniq.run", **{"messaging.message.id": after.id})
    assert _parent_of(dep_run, dep_produce)


@pytest.mark.anyio
async def test_a_failing_run_is_an_error_span_and_each_retry_its_own_span(
    make_oq: Callable[..., OmniQ], spans: Callable[[], list[ReadableSpan]]
) -> None:
    async with make_oq(tracing=True) as oq:
        task = await oq.enqueue(ot.boom, max_retries=1)
        async with oq.worker():
            result = await oq.get_result(task.id, wait=True, timeout=30)
        assert result is not None and result.status is TaskStatus.ERROR
    got = spans()
    produce = _one(got, "omniq.enqueue", **{"messaging.message.id": task.id})
    runs = [s for s in got if s.name == "omniq.run"]
    assert len(runs) == 2  # the first attempt and its retry
    assert sorted(s.attributes["omniq.task.attempt"] for s in runs) == [1, 2]  # type: ignore[index]
    for run in runs:
        assert _parent_of(run, produce)
        assert run.status.status_code is StatusCode.ERROR
        assert any(e.name == "exception" for e in run.events)  # the ValueError recorded


@pytest.mark.anyio
async def test_thread_worker_runs_see_the_run_span(
    make_oq: Callable[..., OmniQ], spans: Callable[[], list[ReadableSpan]]
) -> None:
    async with make_oq(tracing=True) as oq:
        task = await oq.enqueue(ot.traced_thread_work, (2,))
        await oq.run_worker(burst=True)
        assert (await oq.get_result(task.id)).value == 6  # type: ignore[union-attr]
    got = spans()
    run = _one(got, "omniq.run", **{"messaging.message.id": task.id})
    assert _parent_of(_one(got, "app.work"), run)


@pytest.mark.anyio
async def test_a_tracestate_travels_with_the_task_into_the_run(
    make_oq: Callable[..., OmniQ], spans: Callable[[], list[ReadableSpan]]
) -> None:
    upstream = SpanContext(
        trace_id=0x0AF7651916CD43DD8448EB211C80319C,
        span_id=0xB7AD6B7169203331,
        is_remote=True,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
        trace_state=TraceState([("vendor", "v1")]),
    )
    async with make_oq(tracing=True) as oq:
        token = context.attach(trace.set_span_in_context(NonRecordingSpan(upstream)))
        try:
            task = await oq.enqueue(ot.ok, (1,))
        finally:
            context.detach(token)
        stored = await oq.get_task(task.id)
        assert stored is not None
        assert stored.metadata[TRACE_CONTEXT_KEY]["tracestate"] == "vendor=v1"
        await oq.run_worker(burst=True)
    got = spans()
    produce = _one(got, "omniq.enqueue", **{"messaging.message.id": task.id})
    run = _one(got, "omniq.run", **{"messaging.message.id": task.id})
    assert produce.parent is not None and produce.parent.span_id == upstream.span_id
    assert _parent_of(run, produce)
    assert run.context is not None and run.context.trace_state.get("vendor") == "v1"


class _OwnFormat(TextMapPropagator):
    """A propagator of its own: one ``x-trace`` entry, ``<trace id>:<span id>:<flags>``."""

    def extract(
        self,
        carrier: CarrierT,
        context: Context | None = None,
        getter: Getter[CarrierT] = default_getter,
    ) -> Context:
        found = getter.get(carrier, "x-trace")
        if not found:
            return context if context is not None else Context()
        trace_id, span_id, flags = found[0].split(":")
        parent = SpanContext(
            int(trace_id, 16), int(span_id, 16), is_remote=True, trace_flags=TraceFlags(int(flags))
        )
        return trace.set_span_in_context(NonRecordingSpan(parent), context)

    def inject(
        self,
        carrier: CarrierT,
        context: Context | None = None,
        setter: Setter[CarrierT] = default_setter,
    ) -> None:
        sc = trace.get_current_span(context).get_span_context()
        if sc.is_valid:
            setter.set(
                carrier, "x-trace", f"{sc.trace_id:032x}:{sc.span_id:016x}:{sc.trace_flags:d}"
            )

    @property
    def fields(self) -> set[str]:
        return {"x-trace"}


@pytest.mark.anyio
async def test_the_configured_propagator_writes_and_reads_the_context(
    make_oq: Callable[..., OmniQ], spans: Callable[[], list[ReadableSpan]]
) -> None:
    before: Any = propagate.get_global_textmap()
    propagate.set_global_textmap(_OwnFormat())
    try:
        async with make_oq(tracing=True) as oq:
            task = await oq.enqueue(ot.ok, (1,))
            stored = await oq.get_task(task.id)
            assert stored is not None and list(stored.metadata[TRACE_CONTEXT_KEY]) == ["x-trace"]
            await oq.run_worker(burst=True)
    finally:
        propagate.set_global_textmap(before)
    got = spans()
    produce = _one(got, "omniq.enqueue", **{"messaging.message.id": task.id})
    assert _parent_of(_one(got, "omniq.run", **{"messaging.message.id": task.id}), produce)


@pytest.mark.anyio
async def test_tracing_off_records_nothing_and_carries_nothing(
    make_oq: Callable[..., OmniQ], spans: Callable[[], list[ReadableSpan]]
) -> None:
    async with make_oq() as oq:
        task = await oq.enqueue(ot.ok, (1,))
        stored = await oq.get_task(task.id)
        assert stored is not None and TRACE_CONTEXT_KEY not in stored.metadata
        await oq.run_worker(burst=True)
    assert [s for s in spans() if s.name.startswith("omniq.")] == []


def test_tracing_without_opentelemetry_is_a_no_op() -> None:
    script = (
        "import sys, logging\n"
        "sys.modules['opentelemetry'] = None  # as if the otel extra were not installed\n"
        "logging.basicConfig()\n"
        "from omniq.core import OmniQ\n"
        "from omniq.queue import TRACE_CONTEXT_KEY\n"
        "with OmniQ('memory://', tracing=True) as oq:\n"
        "    t = oq.enqueue_sync('operator:add', (1, 2))\n"
        "    oq.run_worker_sync(burst=True)\n"
        "    assert oq.get_result_sync(t.id).value == 3\n"
        "    assert TRACE_CONTEXT_KEY not in oq.get_task_sync(t.id).metadata\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMNIQ_")}
    done = subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "opentelemetry is not installed" in done.stderr


def _provider_run(mode: str) -> dict[str, Any]:
    """``tracing_provider_run.py MODE`` in a process of its own (its own global provider)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMNIQ_", "OTEL_"))}
    done = subprocess.run(
        [sys.executable, str(Path(__file__).with_name("tracing_provider_run.py")), mode],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    out: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return out


def test_a_sampler_that_drops_everything_records_no_run_and_no_child() -> None:
    got = _provider_run("drop")
    assert got["phases"] == [[]]
    assert got["ended"] == []  # not even handed to a processor, as start_span would not
    assert got["children_sampled"] == [False]  # the task's own span follows the run's decision


def test_a_parent_based_sampler_follows_an_unsampled_enqueue_into_the_run() -> None:
    got = _provider_run("parent")
    assert got["phases"] == [[]]  # neither the enqueues, the runs nor the task's span
    assert got["ended"] == []
    assert got["children_sampled"] == [False]


def test_the_sdk_fast_path_records_the_run_spans_start_span_would() -> None:
    """The run spans of the worker's fast path (no ``Tracer.start_span``) and of
    ``start_span`` (forced by a span processor with ``on_start``) agree in every field
    but the ids and times, also when the task annotates its run span."""
    fast, sdk = _provider_run("compare")["phases"]
    runs = ("omniq.run", "omniq.run annotated")
    assert [s["type"] for s in fast if s["name"] in runs] == ["RunSpan"] * 3
    assert [s["type"] for s in sdk if s["name"] in runs] == ["ReadableSpan"] * 3

    def key(span: dict[str, Any]) -> tuple[str, str]:
        return span["name"], str(span["attributes"].get("omniq.task.function"))

    def comparable(span: dict[str, Any], by_id: dict[int, dict[str, Any]]) -> dict[str, Any]:
        out = dict(span)
        assert out.pop("timed") is True
        out.pop("type")
        span_id = out.pop("span_id")
        assert span_id != 0
        trace_id = out.pop("trace_id")
        out["attributes"] = {
            k: v for k, v in span["attributes"].items() if k != "messaging.message.id"
        }
        for event in out["events"]:
            stack = event["attributes"].pop("exception.stacktrace", None)
            assert stack is None or stack.rstrip().endswith("ValueError: boom")
        parent = out.pop("parent")
        if parent is not None:  # which span of this phase is the parent, by name
            assert parent[0] == trace_id
            out["parent"] = key(by_id[parent[1]])
        return out

    def phase(spans: list[dict[str, Any]]) -> list[dict[str, Any]]:
        by_id = {s["span_id"]: s for s in spans}
        return sorted((comparable(s, by_id) for s in spans), key=lambda s: repr(key(s)))

    fast_spans, sdk_spans = phase(fast), phase(sdk)
    assert len(fast_spans) == 7  # three enqueues, three runs, the task's own span
    assert fast_spans == sdk_spans
    annotated = next(s for s in fast_spans if s["name"] == "omniq.run annotated")
    assert annotated["attributes"]["app.n"] == 7
    assert annotated["attributes"]["app.tags"] == ["a", "b"]
    assert annotated["events"] == [{"name": "app.step", "attributes": {"step": 1}, "timed": True}]
    failed = next(s for s in fast_spans if key(s) == ("omniq.run", "obs_tasks:boom"))
    assert failed["status"] == ["ERROR", "ValueError: boom"]
    assert failed["events"][0]["attributes"]["exception.type"] == "ValueError"


def test_an_unsampled_task_passes_its_trace_on_to_what_its_run_enqueues() -> None:
    """Under ``ParentBased`` an unsampled task's run records nothing, yet the run span is
    in the task's trace, unsampled, with a span id of its own and the parent's trace
    state, and a task enqueued from inside the run carries that trace, as through
    ``Tracer.start_span`` (the second phase, forced by a processor with ``on_start``)."""
    got = _provider_run("unsampled")
    assert got["phases"] == [[], []]
    assert got["ended"] == []
    seen = got["seen"]
    assert len(seen) == 4  # two tasks (one with a tracestate) in each phase
    parent_trace, parent_span = 0x0AF7651916CD43DD8448EB211C80319C, 0xB7AD6B7169203331
    # the worker's fast path for a plain unsampled traceparent makes a NonRecordingSpan
    # of its own (its span context built when first asked for); start_span the API's
    assert [r["type"] for r in seen] == ["UnsampledRun", "NonRecordingSpan"] + [
        "NonRecordingSpan"
    ] * 2
    for run in seen:
        assert run["non_recording"] is True
        assert run["recording"] is False
        assert run["trace_id"] == parent_trace
        assert run["span_id"] not in (0, parent_span)
        assert (run["remote"], run["flags"]) == (False, 0)
        version, trace_id, span_id, flags = run["child"]["traceparent"].split("-")
        assert (version, int(trace_id, 16), flags) == ("00", parent_trace, "00")
        assert int(span_id, 16) != 0  # the child's own (unsampled) enqueue span
    assert [r["trace_state"] for r in seen] == ["", "vendor=v1"] * 2
    assert [r["child"].get("tracestate") for r in seen] == [None, "vendor=v1"] * 2
    assert len({r["span_id"] for r in seen}) == 4


def test_a_ratio_sampler_decides_root_runs() -> None:
    """Runs of tasks without a context are root spans: a ratio of 0 records none of
    them (nor the spans they open), a ratio of 1 records each."""
    none = _provider_run("ratio0")
    assert none["phases"] == [[]]
    assert none["ended"] == []
    assert none["children_sampled"] == [False]
    every = _provider_run("ratio1")
    (spans,) = every["phases"]
    runs = [s for s in spans if s["name"] == "omniq.run"]
    assert sorted(s["attributes"]["omniq.task.function"] for s in runs) == [
        "obs_tasks:ok",
        "obs_tasks:opens_a_span",
    ]
    assert all(s["parent"] is None and s["flags"] & 1 for s in runs)
    assert len({s["trace_id"] for s in runs}) == 2
    assert every["children_sampled"] == [True]


def test_a_sampler_of_its_own_decides_every_run() -> None:
    """A sampler the worker does not recognise (here a ``ParentBased`` with its own
    ``should_sample``) is asked about each run, and its decision stands: it records the
    runs of unsampled tasks, and what they enqueue follows the recorded run."""
    got = _provider_run("custom")
    assert got["asked"].count("omniq.run") == 4
    for phase in got["phases"]:
        runs = [s for s in phase if s["name"] == "omniq.run"]
        assert len(runs) == 2
        assert all(s["flags"] & 1 and s["parent"][2] is True for s in runs)
        assert all(s["attributes"]["messaging.system"] == "omniq" for s in runs)
    assert [r["flags"] & 1 for r in got["seen"]] == [1] * 4
