"""Task functions for the metrics and tracing tests (importable by path in worker processes)."""

from __future__ import annotations

import time
from typing import Any

from opentelemetry import trace


def traced_work(n: int) -> int:
    """Open a span of its own: it must be a child of the run's consumer span."""
    with trace.get_tracer("app").start_as_current_span("app.work"):
        return n * 2


def traced_thread_work(n: int) -> int:
    """As ``traced_work``, on a thread worker."""
    with trace.get_tracer("app").start_as_current_span("app.work"):
        return n * 3


traced_thread_work.__omniq_worker__ = "thread"  # type: ignore[attr-defined]


def notify(value: int) -> int:
    """An ``on_success`` callback."""
    return value


def boom() -> None:
    raise ValueError("boom")


def ok(n: int) -> int:
    return n


def fail(n: int) -> int:
    raise ValueError(f"fail {n}")


def pause(seconds: float) -> None:
    """A run that takes at least ``seconds`` (its run time is what the test checks)."""
    time.sleep(seconds)


CHILDREN_SAMPLED: list[bool] = []
"""Whether each ``opens_a_span`` run's own span was sampled (read in-process)."""


def opens_a_span(n: int) -> int:
    """Open a span and note whether the sampler recorded it."""
    with trace.get_tracer("app").start_as_current_span("app.work") as span:
        CHILDREN_SAMPLED.append(span.get_span_context().trace_flags.sampled)
        return n * 2


def annotates(n: int) -> int:
    """Add an attribute, an event and a new name to the run span itself."""
    span = trace.get_current_span()
    span.set_attribute("app.n", n)
    span.set_attributes({"app.tags": ["a", "b"]})
    span.add_event("app.step", {"step": 1})
    span.update_name("omniq.run annotated")
    return n


QUEUE: Any = None
"""The OmniQ ``enqueues_a_child`` enqueues into (set in-process by the test)."""

SEEN: list[dict[str, Any]] = []
"""What each ``enqueues_a_child`` run saw: its current span and its child's carrier."""


async def enqueues_a_child(n: int) -> int:
    """Enqueue a task from inside the run; note the run's span and the child's context."""
    span = trace.get_current_span()
    sc = span.get_span_context()
    child = await QUEUE.enqueue("obs_tasks:ok", (n,), queue="children")
    SEEN.append(
        {
            "type": type(span).__name__,
            "non_recording": isinstance(span, trace.NonRecordingSpan),
            "recording": span.is_recording(),
            "trace_id": sc.trace_id,
            "span_id": sc.span_id,
            "remote": sc.is_remote,
            "flags": int(sc.trace_flags),
            "trace_state": sc.trace_state.to_header(),
            "child": child.metadata.get("trace_context"),
        }
    )
    return n
