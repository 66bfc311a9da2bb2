"""What worker metrics and tracing cost: the W1 drain of ``benchmarks.drain`` A/B.

Four variants, interleaved round by round on the same store: ``off`` (neither),
``metrics`` (``run_worker(metrics=True)``: counters, histogram, running gauge and the
store gauges refreshed every 5 s), ``tracing`` (``OmniQ(tracing=True)`` with the
OpenTelemetry SDK, a BatchSpanProcessor and an exporter that drops the spans, so the
cost measured is OmniQ's spans and the SDK's, not an exporter's network) and ``both``.
Each round enqueues N no-op tasks (1,000 per call), then drains them with a burst
worker (concurrency 100) in this process, after a warm-up; the variants run in a new
order each round. Prints, per variant, the median drain rate and worker CPU time per
task (the steadier figure on a shared machine), each against ``off``, and the median of
the per-round CPU differences to ``off`` ("paired": what the machine's drift over the
rounds does to both cancels out).

    URL=memory://                N=20000 ROUNDS=5 uv run python -m benchmarks.observability
    URL=redis://127.0.0.1:6379/14 N=20000 ROUNDS=3 uv run python -m benchmarks.observability
    SAMPLE=0.01 VARIANTS=off,tracing uv run python -m benchmarks.observability

``SAMPLE`` (default 1) makes the SDK sample that share of traces
(``ParentBased(TraceIdRatioBased(SAMPLE))``): runs of unsampled tasks get
non-recording spans, the usual production setting. On a server store the run uses a
namespace of its own (a Redis key prefix, a PostgreSQL schema, a NATS namespace, unless
the URL names one) and drops it at the end. ``VARIANTS`` picks variants
(comma-separated; ``off`` is always measured, as the base).

The tracer provider is the configuration docs/observability.md recommends for
production: the SDK's ``BatchSpanProcessor`` (spans are queued on the hot path and
exported from its own thread, whose CPU time is counted here since it is the worker
process's), not ``SimpleSpanProcessor`` (which exports synchronously in ``span.end()``).

``START_SPAN=1`` adds a span processor that does nothing but has an ``on_start``: the
worker then makes its run spans with ``Tracer.start_span`` instead of its fast path for
the SDK's provider (docs/observability.md), the A/B of that path.

``PARTS=1`` first prints the CPU cost of each piece of a traced and a counted run on
its own (one core, a tight loop, microseconds per call): where the per-task overhead
goes.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import random
import statistics
import time
import uuid
from collections.abc import Sequence
from typing import Any

VARIANTS = ("off", "metrics", "tracing", "both")


def _install_sdk(sample: float = 1.0, start_span: bool = False) -> None:
    from opentelemetry import trace
    from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
    from opentelemetry.sdk.trace.export import (
        BatchSpanProcessor,
        SpanExporter,
        SpanExportResult,
    )
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    class Drop(SpanExporter):
        def export(self, spans: Sequence[Any]) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    provider = TracerProvider(sampler=ParentBased(TraceIdRatioBased(sample)))
    provider.add_span_processor(BatchSpanProcessor(Drop()))
    if start_span:

        class Starts(SpanProcessor):
            def on_start(self, span: Any, parent_context: Any = None) -> None:
                pass

        provider.add_span_processor(Starts())
    trace.set_tracer_provider(provider)


def _per_call(fn: Any, n: int = 20_000) -> float:
    """CPU microseconds per call of ``fn()``, best of three loops of ``n``."""
    best = float("inf")
    for _ in range(3):
        c0 = time.process_time()
        for _ in range(n):
            fn()
        best = min(best, time.process_time() - c0)
    return 1e6 * best / n


def _parts() -> None:
    """The cost of each piece of a traced and a counted run, on its own."""
    from opentelemetry import context, propagate, trace

    from omniq.core import _metrics
    from omniq.models import ClaimedTask, Task, TaskStatus
    from omniq.queue import TRACE_CONTEXT_KEY, Tracing
    from omniq.workers import Outcome

    tracing = Tracing()
    tracer = trace.get_tracer("omniq")
    span = tracer.start_span("request")
    carrier: dict[str, str] = {}
    propagate.inject(carrier, context=trace.set_span_in_context(span))
    span.end()
    traced = Task(
        func="benchmarks.drain:noop", queue="bench", metadata={TRACE_CONTEXT_KEY: carrier}
    )
    plain = Task(func="benchmarks.drain:noop", queue="bench")
    parent = propagate.extract(carrier)
    attrs = {
        "messaging.system": "omniq",
        "messaging.operation.type": "process",
        "messaging.destination.name": "bench",
        "messaging.message.id": traced.id,
        "omniq.task.function": traced.func,
        "omniq.task.attempt": 1,
    }
    consumer = trace.SpanKind.CONSUMER

    def start_end() -> None:
        tracer.start_span("omniq.run", context=parent, kind=consumer, attributes=attrs).end()

    def start_end_bare() -> None:
        tracer.start_span("omniq.run", context=parent, kind=consumer).end()

    ctx = trace.set_span_in_context(span)

    def attach_detach() -> None:
        context.detach(context.attach(ctx))

    def run_scope(task: Task) -> Any:
        def call() -> None:
            with tracing.run(task):
                pass

        return call

    m = _metrics._get()
    counter = m.started.labels("bench", "f")
    histogram = m.duration.labels("bench", "f")
    observer = _metrics._Observer(m)
    batch = 100  # about what the pool's flusher hands over at once under load
    claims = [
        ClaimedTask(
            task=Task(func="f", queue="bench"), token="t", lease_expires_at=0.0, worker_id="w"
        )
        for _ in range(batch)
    ]
    outcomes = [
        Outcome(claimed=c, status=TaskStatus.SUCCESS, started_at=1.0, duration=0.0004)
        for c in claims
    ]

    def observe_batch() -> None:
        observer.started(claims)
        observer.reported(outcomes, set())

    rows = [
        ("propagate.extract(carrier) (the global propagator)", lambda: propagate.extract(carrier)),
        ("Tracing._extract(carrier) (plain traceparent)", lambda: tracing._extract(carrier)),
        ("tracer.start_span(6 attributes) + end()", start_end),
        ("tracer.start_span(no attributes) + end()", start_end_bare),
        ("context.attach + detach", attach_detach),
        ("Tracing.run(task) scope, task with a trace context", run_scope(traced)),
        ("Tracing.run(task) scope, task without one (a root span)", run_scope(plain)),
        ("Counter child .inc()", counter.inc),
        ("Histogram child .observe(0.001)", lambda: histogram.observe(0.001)),
    ]
    print("CPU us per call, one core:")
    for name, fn in rows:
        print(f"  {name:58s} {_per_call(fn):6.2f}")
    per_task = _per_call(observe_batch, 2_000) / batch
    print(f"  {'metrics observer per task (started + reported, batch of 100)':58s} {per_task:6.2f}")


async def _round(url: str, n: int, variant: str) -> tuple[float, float]:
    """One drain of ``n`` tasks: (tasks/s, worker CPU microseconds per task)."""
    from omniq.core import OmniQ

    drain = importlib.import_module("benchmarks.drain")
    tracing = variant in ("tracing", "both")
    metrics = variant in ("metrics", "both")
    item = ("benchmarks.drain:noop", ())
    async with OmniQ(url, tracing=tracing) as oq:
        for start in range(0, n, 1000):
            await oq.enqueue_many([item] * min(1000, n - start), queue="bench")
        drain.Seen.done = 0
        c0 = time.process_time()
        await oq.run_worker(queues=["bench"], concurrency=100, burst=True, metrics=metrics)
        c1 = time.process_time()
    seen = drain.Seen
    assert seen.done == n, (variant, seen.done)
    return n / (seen.t_last - seen.t_first), 1e6 * (c1 - c0) / n


_NAMESPACE = {"redis": "prefix", "postgresql": "schema", "postgres": "schema", "nats": "namespace"}


def _own_namespace(url: str) -> tuple[str, bool]:
    """``url`` with a fresh namespace of this run's own, and whether one was added."""
    from urllib.parse import parse_qs, urlsplit

    parts = urlsplit(url)
    param = _NAMESPACE.get(parts.scheme.split("+")[0])
    if param is None or param in parse_qs(parts.query):
        return url, False
    tag = f"obs{uuid.uuid4().hex[:12]}"
    value = f"omniq-{tag}:" if param == "prefix" else f"omniq_{tag}" if param == "schema" else tag
    return f"{url}{'&' if parts.query else '?'}{param}={value}", True


async def _drop(url: str) -> None:
    from omniq.storage import open_storage

    async with open_storage(url) as backend:
        await backend.drop()  # type: ignore[attr-defined]


async def _main(
    url: str, n: int, rounds: int, variants: list[str], sample: float, parts: bool
) -> None:
    _install_sdk(sample, start_span=os.environ.get("START_SPAN", "") not in ("", "0"))
    if parts:
        _parts()
    url, owned = _own_namespace(url)
    try:
        await _measure(url, n, rounds, variants, sample)
    finally:
        if owned:
            await _drop(url)


async def _measure(url: str, n: int, rounds: int, variants: list[str], sample: float) -> None:
    if "off" not in variants:
        variants.insert(0, "off")
    for variant in variants:  # warm-up: imports, first metric children, first spans
        await _round(url, 300, variant)
    rates: dict[str, list[float]] = {v: [] for v in variants}
    cpus: dict[str, list[float]] = {v: [] for v in variants}
    order = random.Random(20261205)
    for _ in range(rounds):
        # each round in an order of its own, so no variant always follows another
        for variant in order.sample(variants, len(variants)):
            rate, cpu = await _round(url, n, variant)
            rates[variant].append(rate)
            cpus[variant].append(cpu)
    base_rate = statistics.median(rates["off"])
    base_cpu = statistics.median(cpus["off"])
    print(f"{url} N={n} rounds={rounds} sample={sample} (medians)")
    for variant in variants:
        rate, cpu = statistics.median(rates[variant]), statistics.median(cpus[variant])
        # the median of each round's difference to that round's off: the machine's drift
        # over the rounds cancels out
        paired = statistics.median(c - o for c, o in zip(cpus[variant], cpus["off"], strict=True))
        print(
            f"  {variant:8s} drain {rate:9,.0f}/s ({100 * (rate / base_rate - 1):+6.1f}%) | "
            f"worker {cpu:6.1f} us CPU/task ({100 * (cpu / base_cpu - 1):+6.1f}%; "
            f"paired {paired:+5.2f} us, {100 * paired / base_cpu:+6.1f}%)"
        )


if __name__ == "__main__":
    asyncio.run(
        _main(
            os.environ.get("URL", "memory://"),
            int(os.environ.get("N", "20000")),
            int(os.environ.get("ROUNDS", "3")),
            [v for v in os.environ.get("VARIANTS", ",".join(VARIANTS)).split(",") if v],
            float(os.environ.get("SAMPLE", "1")),
            os.environ.get("PARTS", "") not in ("", "0"),
        )
    )
