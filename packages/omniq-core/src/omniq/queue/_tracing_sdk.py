"""The run span without ``Tracer.start_span`` when the tracer provider is the SDK's own.

Imported only when the global tracer provider is exactly
``opentelemetry.sdk.trace.TracerProvider``. ``LeanRuns.for_provider`` says whether the
fast path applies (the omniq tracer is the SDK's ``Tracer`` with its internal metrics
off, every span processor is the SDK's batch or simple processor or leaves ``on_start``
and ``_on_ending`` as the base class has them, and no span-attribute length limit
applies); ``start`` then does what ``Tracer.start_span`` does for the run span: the
sampler's decision, the trace and span ids from the provider's id generator, a
``NonRecordingSpan`` when the sampler does not record. A recorded run is a ``RunSpan``:
a ``ReadableSpan`` that is also a live span (attributes, events, status, name can be
set while it runs, with the SDK's limits), handed to the span processors' ``on_end``
itself when it ends, instead of the SDK span's validated attribute copy, lock and end
copy.

The sampler's decision is taken without calling it where the sampler is recognised
exactly as one of the SDK's standard ones and the decision is a drop: ``ParentBased``
(its ``should_sample`` not overridden) whose remote-parent-not-sampled delegate is the
SDK's static drop sampler, for a task whose context is unsampled (``unsampled``); and a
``ParentBased`` whose root is ``TraceIdRatioBased`` or the static drop sampler, for a
root run whose new trace id the ratio rejects. The span is then the
``NonRecordingSpan`` the sampler's decision would give (same trace id, a new span id,
the unsampled flag, the parent's trace state), with no attributes, sampling result or
parent lookup built for it. Every other sampler, and every decision to record, goes
through ``Sampler.should_sample``.
"""

from __future__ import annotations

import logging
import threading
import traceback
from collections.abc import Mapping, Sequence
from contextvars import ContextVar, Token
from time import time_ns
from types import TracebackType
from typing import Any, cast

from opentelemetry import context as context_api
from opentelemetry import trace as trace_api
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.context import Context
from opentelemetry.context.contextvars_context import ContextVarsRuntimeContext
from opentelemetry.sdk.trace import (
    ConcurrentMultiSpanProcessor,
    Event,
    ReadableSpan,
    SpanLimits,
    SpanProcessor,
    SynchronousMultiSpanProcessor,
    Tracer,
    TracerProvider,
)
from opentelemetry.sdk.trace._tracer_metrics import NoOpTracerMetrics
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.sdk.trace.sampling import (
    Decision,
    ParentBased,
    Sampler,
    StaticSampler,
    TraceIdRatioBased,
)
from opentelemetry.sdk.util import BoundedList
from opentelemetry.trace import (
    Link,
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
)
from opentelemetry.util import types

from omniq.models import Task

__all__ = ["LeanRuns", "RunSpan", "UnsampledRoot", "UnsampledRun"]

_log = logging.getLogger("opentelemetry.sdk.trace")
_NAME = "omniq.run"
_UNSET = Status(StatusCode.UNSET)
_ATTRIBUTES = 6  # the run span's own attributes
_FLAGS = {
    (sampled, random): TraceFlags(
        (TraceFlags.SAMPLED if sampled else TraceFlags.DEFAULT)
        | (TraceFlags.RANDOM_TRACE_ID if random else 0)
    )
    for sampled in (False, True)
    for random in (False, True)
}


_RATIO_LIMIT = TraceIdRatioBased.TRACE_ID_LIMIT
_DEFAULT_STATE = SpanContext(1, 1, is_remote=False).trace_state  # the SDK's shared default
_TRACE_MAX = 2**128 - 1
_SPAN_MAX = 2**64 - 1
_new_tuple: Any = tuple.__new__
_TUPLE_LAYOUT = all(
    _new_tuple(SpanContext, (t, s, False, f, _DEFAULT_STATE, valid))
    == SpanContext(t, s, is_remote=False, trace_flags=f)
    and SpanContext(t, s, is_remote=False, trace_flags=f).trace_state is _DEFAULT_STATE
    for t, s, valid in ((1, 2, True), (_TRACE_MAX, _SPAN_MAX, True), (1, 0, False))
    for f in _FLAGS.values()
)
"""Whether a ``SpanContext`` is the tuple (trace id, span id, remote, flags, state,
valid), as in the SDK versions this module knows."""


def _unsampled_context(
    trace_id: int, span_id: int, random: bool, state: Any = _DEFAULT_STATE
) -> SpanContext:
    """``SpanContext(trace_id, span_id, is_remote=False, trace_flags=<not sampled,
    random>, trace_state=state)``, built as its constructor builds it."""
    if _TUPLE_LAYOUT and state is _DEFAULT_STATE:
        valid = 0 < trace_id <= _TRACE_MAX and 0 < span_id <= _SPAN_MAX
        flags = _FLAGS[False, random]
        return cast(
            SpanContext, _new_tuple(SpanContext, (trace_id, span_id, False, flags, state, valid))
        )
    return SpanContext(
        trace_id,
        span_id,
        is_remote=False,
        trace_flags=_FLAGS[False, random],
        trace_state=state,
    )


def _unsampled(
    trace_id: int, span_id: int, random: bool, state: Any = _DEFAULT_STATE
) -> NonRecordingSpan:
    """The ``NonRecordingSpan`` of ``_unsampled_context(...)``."""
    return NonRecordingSpan(_unsampled_context(trace_id, span_id, random, state))


_SPAN_KEY: str = next(iter(trace_api.set_span_in_context(trace_api.INVALID_SPAN, Context())))
"""The context key the current span is kept under (as ``set_span_in_context`` sets it)."""
_runtime: Any = getattr(context_api, "_RUNTIME_CONTEXT", None)
_CURRENT: ContextVar[Context] | None = (
    _runtime._current_context
    if type(_runtime) is ContextVarsRuntimeContext
    and isinstance(getattr(_runtime, "_current_context", None), ContextVar)
    else None
)
"""The context variable behind ``context.attach``/``detach``/``get_current`` when the
runtime context is the API's default ``ContextVarsRuntimeContext`` (those calls are
then its ``set``/``reset``/``get``), else None (then they are called)."""
_new: Any = object.__new__
_FIRST_USE = threading.Lock()


class UnsampledRun(NonRecordingSpan):
    """The run span of a task whose carried context is a plain, valid, unsampled
    ``traceparent`` that the sampler drops, and the scope that makes it current.

    The span is what ``Tracer.start_span`` would give (the parent's trace id, a new span
    id from the provider's id generator, the unsampled flag, the default trace state),
    its span context built on first use: most such runs never look at their span, and
    then nothing is parsed or generated for it. As a scope (the first ``with``), it is
    current in the current context while the function runs and leaving restores the
    context; a ``with`` on it inside the run is a non-recording span's (nothing happens).
    Made by ``LeanRuns.unsampled`` without ``__init__``."""

    _context: SpanContext | None = None  # type: ignore[assignment]
    _token: Token[Context] | None = None
    _depth = 0
    _traceparent: str
    _ids: IdGenerator

    def get_span_context(self) -> SpanContext:
        sc = self._context
        if sc is None:
            with _FIRST_USE:  # threads of one run asking at once see one span id
                sc = self._context
                if sc is None:
                    sc = self._context = self._build()
        return sc

    def _build(self) -> SpanContext:
        tp = self._traceparent
        return _unsampled_context(
            int(tp[3:35], 16), self._ids.generate_span_id(), bool(int(tp[53:55], 16) & 2)
        )

    def __repr__(self) -> str:
        return f"NonRecordingSpan({self.get_span_context()!r})"

    def __enter__(self) -> UnsampledRun:
        depth = self._depth
        self._depth = depth + 1
        if depth:
            return self
        cv = _CURRENT
        current = context_api.get_current() if cv is None else cv.get()
        # set_span_in_context(self) copies the current context twice; one copy does
        ctx = Context({**current, _SPAN_KEY: self}) if current else Context({_SPAN_KEY: self})
        self._token = context_api.attach(ctx) if cv is None else cv.set(ctx)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        depth = self._depth = self._depth - 1
        token = self._token
        if depth or token is None:
            return
        self._token = None
        if _CURRENT is not None:
            try:
                _CURRENT.reset(token)
                return
            except ValueError:  # entered in another context: detach says so in the log
                pass
        context_api.detach(token)


class UnsampledRoot(UnsampledRun):
    """``UnsampledRun`` for a task without a context whose new root trace the sampler's
    ratio drops: the trace id (the one the ratio was compared on) is known, the span id
    is made on first use. Made by ``LeanRuns.root``."""

    _trace_id: int
    _random: bool

    def _build(self) -> SpanContext:
        return _unsampled_context(self._trace_id, self._ids.generate_span_id(), self._random)


def _drops(sampler: object) -> bool:
    """Whether ``sampler`` is exactly the SDK's static sampler that drops everything."""
    return (
        isinstance(sampler, StaticSampler)
        and type(sampler).should_sample is StaticSampler.should_sample
        and sampler._decision is Decision.DROP
    )


def _parent_based(sampler: Sampler) -> ParentBased | None:
    """``sampler`` when it is the SDK's ``ParentBased`` with its decision logic intact."""
    if isinstance(sampler, ParentBased) and type(sampler).should_sample is (
        ParentBased.should_sample
    ):
        return sampler
    return None


def _unsampled_drops(sampler: Sampler) -> bool:
    """Whether ``sampler`` certainly drops a span whose parent is remote and unsampled."""
    parent_based = _parent_based(sampler)
    return parent_based is not None and _drops(parent_based._remote_parent_not_sampled)


def _root_bound(sampler: Sampler) -> int | None:
    """The trace-id bound under which ``sampler`` samples a root span, when its root is
    the SDK's ratio sampler (or static drop sampler, bound 0); None for any other."""
    parent_based = _parent_based(sampler)
    if parent_based is None:
        return None
    root = parent_based._root
    if _drops(root):
        return 0
    if (
        type(root) is TraceIdRatioBased
        and type(root).TRACE_ID_LIMIT == _RATIO_LIMIT
        and isinstance(root._bound, int)
    ):
        return root._bound
    return None


def _plain_processor(processor: SpanProcessor) -> bool:
    """Whether ``processor`` needs nothing but ``on_end`` of a finished span."""
    cls = type(processor)
    if cls is BatchSpanProcessor or cls is SimpleSpanProcessor:
        return True
    return cls.on_start is SpanProcessor.on_start and cls._on_ending is SpanProcessor._on_ending


class LeanRuns:
    """Starts run spans for one SDK tracer provider (see the module docstring)."""

    __slots__ = ("_processor", "_processors", "_root_bound", "_tracer", "drops_unsampled")

    def __init__(self, tracer: Tracer, processor: SpanProcessor) -> None:
        self._tracer = tracer
        self._processor = processor
        self._processors = getattr(processor, "_span_processors", None)
        sampler = tracer.sampler
        self.drops_unsampled = _unsampled_drops(sampler)
        """Whether ``unsampled`` applies: the sampler drops runs of unsampled tasks."""
        self._root_bound = _root_bound(sampler)

    @classmethod
    def for_provider(cls, provider: object) -> LeanRuns | None:
        """The fast path for ``provider``, or None where ``start_span`` must make the span."""
        if type(provider) is not TracerProvider:
            return None
        try:
            tracer = provider.get_tracer("omniq")
            if type(tracer) is not Tracer:
                return None
            active = provider._active_span_processor
            limits: SpanLimits = tracer._span_limits
            if (
                type(tracer._tracer_metrics) is not NoOpTracerMetrics
                or type(active) not in (SynchronousMultiSpanProcessor, ConcurrentMultiSpanProcessor)
                or not all(_plain_processor(p) for p in active._span_processors)
                or limits.max_span_attribute_length is not None
                or (
                    limits.max_span_attributes is not None
                    and limits.max_span_attributes < _ATTRIBUTES
                )
            ):
                return None
            for name in ("sampler", "id_generator", "resource", "instrumentation_info"):
                getattr(tracer, name)
            tracer._instrumentation_scope  # noqa: B018 (present in this SDK version)
            tracer._tracer_config.is_enabled  # noqa: B018
        except AttributeError:
            return None
        return cls(tracer, active)

    def current(self) -> bool:
        """Whether no span processor was added since this fast path was chosen."""
        processor: Any = self._processor
        return self._processors is processor._span_processors

    def unsampled(self, traceparent: str) -> UnsampledRun | None:
        """The run scope of a task whose context is the plain, valid, unsampled
        ``traceparent`` (no trace state), as ``start`` makes its span when
        ``drops_unsampled``; None when the tracer is disabled."""
        tracer = self._tracer
        if not tracer._tracer_config.is_enabled:
            return None
        run: UnsampledRun = _new(UnsampledRun)
        run._traceparent = traceparent
        run._ids = tracer.id_generator
        return run

    @property
    def decides_roots(self) -> bool:
        """Whether ``root`` applies: the sampler's root is the SDK's ratio sampler (or
        its static drop sampler)."""
        return self._root_bound is not None

    def root(self) -> UnsampledRoot | tuple[int, bool] | None:
        """The run of a task without a context (a root span) when ``decides_roots``:
        its ``UnsampledRoot`` when the ratio drops the new trace, else the trace id and
        its random flag, for ``start`` to record the run in that trace (drawing another
        would ask the ratio twice); None when the tracer is disabled."""
        tracer = self._tracer
        bound = self._root_bound
        if bound is None or not tracer._tracer_config.is_enabled:
            return None
        ids = tracer.id_generator
        trace_id = ids.generate_trace_id()
        random = bool(ids.is_trace_id_random())
        if trace_id & _RATIO_LIMIT < bound:
            return trace_id, random
        run: UnsampledRoot = _new(UnsampledRoot)
        run._trace_id = trace_id
        run._random = random
        run._ids = ids
        return run

    def start(self, task: Task, parent: Context, root: tuple[int, bool] | None = None) -> Any:
        """The run span of ``task``, a child of the span ``parent`` holds, as
        ``Tracer.start_span`` would make it; None when the tracer is disabled. ``root``:
        the trace id and random flag ``root`` drew for a run without a parent."""
        tracer = self._tracer
        if not tracer._tracer_config.is_enabled:
            return None
        parent_sc = trace_api.get_current_span(parent).get_span_context()
        ids = tracer.id_generator
        if parent_sc.is_valid:
            trace_id = parent_sc.trace_id
            random = parent_sc.trace_flags.random_trace_id
            parent_or_none: SpanContext | None = parent_sc
            if self.drops_unsampled and parent_sc.is_remote and not parent_sc.trace_flags.sampled:
                # the decision ParentBased takes
                return _unsampled(
                    trace_id, ids.generate_span_id(), bool(random), parent_sc.trace_state
                )
        else:
            if root is None:
                trace_id = ids.generate_trace_id()
                random = ids.is_trace_id_random()
            else:
                trace_id, random = root
            parent_or_none = None
            bound = self._root_bound
            if bound is not None and trace_id & _RATIO_LIMIT >= bound:
                # the decision TraceIdRatioBased takes
                return _unsampled(trace_id, ids.generate_span_id(), bool(random))
        attributes: dict[str, Any] = {
            "messaging.system": "omniq",
            "messaging.operation.type": "process",
            "messaging.destination.name": task.queue,
            "messaging.message.id": task.id,
            "omniq.task.function": task.func,
            "omniq.task.attempt": task.attempt,
        }
        sampling = tracer.sampler.should_sample(
            parent, trace_id, _NAME, SpanKind.CONSUMER, attributes, ()
        )
        decision: Any = sampling.decision  # its methods are untyped
        span_context = SpanContext(
            trace_id,
            ids.generate_span_id(),
            is_remote=False,
            trace_flags=_FLAGS[decision.is_sampled(), bool(random)],
            trace_state=sampling.trace_state,
        )
        if not decision.is_recording():
            return NonRecordingSpan(span_context)
        limits = tracer._span_limits
        got = sampling.attributes
        own: types.Attributes
        if got == attributes:
            own = attributes  # plain strings and an int: nothing to validate
        else:  # the sampler changed them: as the SDK span takes them
            own = BoundedAttributes(
                limits.max_span_attributes,
                got,
                immutable=False,
                max_value_len=limits.max_span_attribute_length,
            )
        return RunSpan(
            span_context,
            parent=parent_or_none,
            tracer=tracer,
            attributes=own,
            processor=self._processor,
            limits=limits,
        )


class RunSpan(trace_api.Span, ReadableSpan):
    """A recorded run span: live while the function runs, its own ``ReadableSpan`` once
    ended (then unchangeable, as the SDK's copy is)."""

    def __init__(
        self,
        context: SpanContext,
        *,
        parent: SpanContext | None,
        tracer: Tracer,
        attributes: types.Attributes,
        processor: SpanProcessor,
        limits: SpanLimits,
    ) -> None:
        self._name = _NAME
        self._context = context
        self._kind = SpanKind.CONSUMER
        self._instrumentation_info = tracer.instrumentation_info
        self._instrumentation_scope = tracer._instrumentation_scope
        self._parent = parent
        self._end_time: int | None = None
        self._attributes = attributes
        self._events: Sequence[Event] = ()
        self._links: Sequence[Link] = ()
        self._resource = tracer.resource
        self._status = _UNSET
        self._limits = limits
        self._processor = processor
        self._start_time = time_ns()

    def __repr__(self) -> str:
        return f'{type(self).__name__}(name="{self._name}", context={self._context})'

    def get_span_context(self) -> SpanContext:
        return cast("SpanContext", self._context)

    def is_recording(self) -> bool:
        return self._end_time is None

    def _ended(self, what: str) -> bool:
        if self._end_time is None:
            return False
        _log.warning("%s on ended span.", what)
        return True

    def _bounded(self) -> BoundedAttributes:
        attrs = self._attributes
        if not isinstance(attrs, BoundedAttributes):
            limits = self._limits
            attrs = self._attributes = BoundedAttributes(
                limits.max_span_attributes,
                attrs,
                immutable=False,
                max_value_len=limits.max_span_attribute_length,
            )
        return attrs

    def set_attributes(self, attributes: Mapping[str, types.AnyValue]) -> None:
        if not self._ended("Setting attribute"):
            self._bounded()._set_items(attributes)

    def set_attribute(self, key: str, value: types.AnyValue) -> None:
        if not self._ended("Setting attribute"):
            self._bounded()[key] = value

    def add_event(
        self,
        name: str,
        attributes: types.Attributes = None,
        timestamp: int | None = None,
    ) -> None:
        if self._ended("Calling add_event"):
            return
        limits = self._limits
        events = self._events
        if not isinstance(events, BoundedList):
            events = self._events = BoundedList(limits.max_events)
        bounded = BoundedAttributes(
            limits.max_event_attributes,
            attributes,
            max_value_len=limits.max_attribute_length,
            immutable=True,
        )
        events.append(Event(name=name, attributes=bounded, timestamp=timestamp))

    def add_link(self, context: SpanContext, attributes: types.Attributes = None) -> None:
        from opentelemetry.sdk.trace import _is_valid_link

        if self._ended("Calling add_link") or not _is_valid_link(context, attributes):
            return
        limits = self._limits
        links = self._links
        if not isinstance(links, BoundedList):
            links = self._links = BoundedList(limits.max_links)
        bounded = BoundedAttributes(
            limits.max_link_attributes,
            attributes,
            max_value_len=limits.max_attribute_length,
            immutable=True,
        )
        links.append(Link(context=context, attributes=bounded))

    def update_name(self, name: str) -> None:
        if not self._ended("Calling update_name"):
            self._name = name

    def set_status(self, status: Status | StatusCode, description: str | None = None) -> None:
        if self._ended("Calling set_status"):
            return
        if self._status.status_code is StatusCode.OK:
            return
        if isinstance(status, Status):
            if status.status_code is StatusCode.UNSET:
                return
            if description is not None:
                _log.warning(
                    "Description %s ignored. Use either `Status` or `(StatusCode, Description)`",
                    description,
                )
            self._status = status
        elif status is not StatusCode.UNSET:
            self._status = Status(status, description)

    def record_exception(
        self,
        exception: BaseException,
        attributes: types.Attributes = None,
        timestamp: int | None = None,
        escaped: bool = False,
    ) -> None:
        module = type(exception).__module__
        qualname = type(exception).__qualname__
        recorded: dict[str, types.AnyValue] = {
            "exception.type": f"{module}.{qualname}"
            if module and module != "builtins"
            else qualname,
            "exception.message": str(exception),
            "exception.stacktrace": "".join(traceback.format_exception(exception)),
            "exception.escaped": str(escaped),
        }
        if attributes:
            recorded.update(attributes)
        self.add_event("exception", recorded, timestamp)

    def end(self, end_time: int | None = None) -> None:
        if self._end_time is not None:
            _log.warning("Calling end() on an ended span.")
            return
        self._end_time = end_time if end_time is not None else time_ns()
        attrs = self._attributes
        if isinstance(attrs, BoundedAttributes):
            attrs._immutable = True
        self._processor.on_end(self)
