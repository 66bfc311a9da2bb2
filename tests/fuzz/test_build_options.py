"""Hostile enqueue options: every one is validated before a task exists.

- Fuzz: arbitrary values for every ``build_task`` option either build a Task that is
  within the documented bounds and round-trips through the storage codec, or raise
  InvalidTaskError (SerializationError only for argument values that cannot be
  serialized) — never a bare ValueError/TypeError/OverflowError.
- One test per reported defect over ``build_task``.
- Per backend (memory, sqlite, file, postgres, redis, nats): the bad options are refused
  by ``OmniQ.enqueue`` with nothing stored, and a task at the edges of the bounds
  (priority extremes, eta 99 years ahead) is stored and read back unchanged.
"""

from __future__ import annotations

import math
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from omniq.config import Settings
from omniq.core import OmniQ
from omniq.models import (
    MAX_HORIZON_SECONDS,
    MAX_ID_LENGTH,
    MAX_RETRIES,
    PRIORITY_MAX,
    PRIORITY_MIN,
    InvalidTaskError,
    SerializationError,
    Task,
    TaskStatus,
    validate_task,
)
from omniq.queue import EnqueueOptions, build_task
from omniq.serialization import SerializationManager
from omniq.storage import open_storage
from omniq.storage._codec import decode_task, encode
from omniq.storage.testing import builtin_specs

SETTINGS = Settings()
SERIALIZER = SerializationManager.from_settings(SETTINGS)
NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._:-]{0,127}")


def target(*args: Any, **kwargs: Any) -> None:
    """The function the fuzzed tasks name."""


# -- values of every kind, good and bad ---------------------------------------------------

_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(),
    st.sampled_from([math.nan, math.inf, -math.inf, 1e308, -0.0, 5e-324]),
    st.text(max_size=20),
    st.sampled_from(["", ".", "..", "../../../../etc/passwd", "a/b", "q", "5", "async"]),
    st.binary(max_size=8),
    st.datetimes(timezones=st.one_of(st.none(), st.just(UTC))),
    st.timedeltas(),
    st.sampled_from([timedelta.max, timedelta.min, timedelta(seconds=-1)]),
)
_anything = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.lists(inner, max_size=3).map(tuple),
        st.dictionaries(st.one_of(st.text(max_size=5), st.integers()), inner, max_size=3),
        st.just(object()),
        st.just(target),
        st.just(Task(func="m:f")),
    ),
    max_leaves=8,
)

OPTIONS = [*EnqueueOptions.__annotations__, "task_id"]


@st.composite
def _options(draw: st.DrawFn) -> dict[str, Any]:
    names = draw(st.lists(st.sampled_from(OPTIONS), unique=True, max_size=5))
    return {n: draw(_anything) for n in names}


def _check_built(task: Task, before: float, after: float) -> None:
    validate_task(task, at=after)
    back = decode_task(encode(task))
    assert msgspec.to_builtins(back) == msgspec.to_builtins(task)
    assert NAME.fullmatch(task.id) and NAME.fullmatch(task.queue)
    assert type(task.priority) is int and PRIORITY_MIN <= task.priority <= PRIORITY_MAX
    assert type(task.max_retries) is int and 0 <= task.max_retries <= MAX_RETRIES
    assert before <= task.created_at <= after
    if task.eta is not None:
        assert 0 <= task.eta <= after + MAX_HORIZON_SECONDS
    for value in (task.expires_at, task.timeout, task.retry_delay):
        assert value is None or (math.isfinite(value) and value >= 0)
    if task.timeout is not None:
        assert 0 < task.timeout <= MAX_HORIZON_SECONDS
    assert all(NAME.fullmatch(d) for d in task.depends_on)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(
    func=st.one_of(st.just("tests.fuzz.test_build_options:target"), st.just(target), _anything),
    args=st.one_of(st.just(()), _anything),
    kwargs=st.one_of(st.none(), _anything),
    options=_options(),
)
def test_any_option_builds_a_bounded_task_or_raises_invalid_task(
    func: Any, args: Any, kwargs: Any, options: dict[str, Any]
) -> None:
    from omniq.models import now

    before = now()
    try:
        task = build_task(SERIALIZER, SETTINGS, func, args, kwargs, **options)
    except InvalidTaskError:
        return
    except SerializationError as exc:
        # only the argument values themselves may be unserializable
        assert "argument" in str(exc), exc
        return
    _check_built(task, before, now())


@settings(max_examples=200, deadline=None)
@given(
    priority=st.integers(PRIORITY_MIN, PRIORITY_MAX),
    delay=st.floats(0, MAX_HORIZON_SECONDS),
    ttl=st.floats(0, MAX_HORIZON_SECONDS),
    timeout=st.floats(0, MAX_HORIZON_SECONDS),
    max_retries=st.integers(0, MAX_RETRIES),
    queue=st.from_regex(NAME, fullmatch=True),
    task_id=st.from_regex(NAME, fullmatch=True),
)
def test_every_value_inside_the_bounds_is_accepted(
    priority: int,
    delay: float,
    ttl: float,
    timeout: float,
    max_retries: int,
    queue: str,
    task_id: str,
) -> None:
    from omniq.models import now

    before = now()
    task = build_task(
        SERIALIZER,
        SETTINGS,
        target,
        (1, "a"),
        {"k": [1.5]},
        priority=priority,
        delay=delay,
        ttl=ttl,
        timeout=timeout,
        max_retries=max_retries,
        queue=queue,
        task_id=task_id,
        metadata={"tenant": queue},
    )
    _check_built(task, before, now())
    assert (task.priority, task.max_retries, task.queue, task.id) == (
        priority,
        max_retries,
        queue,
        task_id,
    )


# -- one test per reported defect ---------------------------------------------------------

NAIVE = datetime(2030, 1, 1)  # no tzinfo: ambiguous across hosts

REFUSED: list[tuple[str, dict[str, Any]]] = [
    ("timeout", {"timeout": math.nan}),
    ("timeout", {"timeout": math.inf}),
    ("timeout", {"timeout": -1}),
    ("eta", {"eta": math.nan}),
    ("eta", {"eta": math.inf}),
    ("eta", {"eta": -math.inf}),
    ("eta", {"eta": 1e308}),
    ("eta", {"eta": 10**400}),
    ("eta", {"eta": NAIVE}),
    ("eta", {"eta": datetime(9999, 12, 31, tzinfo=UTC)}),
    ("eta", {"eta": "2030-01-01"}),
    ("delay", {"delay": 1e308}),
    ("delay", {"delay": math.nan}),
    ("delay", {"delay": timedelta.max}),
    ("delay", {"delay": "5"}),
    ("ttl", {"ttl": math.nan}),
    ("ttl", {"ttl": math.inf}),
    ("ttl", {"ttl": []}),
    ("retry_delay", {"retry_delay": math.inf}),
    ("retry_delay", {"retry_delay": -0.5}),
    ("max_retries", {"max_retries": 2.5}),
    ("max_retries", {"max_retries": True}),
    ("max_retries", {"max_retries": -1}),
    ("max_retries", {"max_retries": MAX_RETRIES + 1}),
    ("priority", {"priority": "5"}),
    ("priority", {"priority": 2**63}),
    ("priority", {"priority": PRIORITY_MAX + 1}),
    ("priority", {"priority": PRIORITY_MIN - 1}),
    ("priority", {"priority": 1.0}),
    ("priority", {"priority": False}),
    ("queue", {"queue": 123}),
    ("queue", {"queue": ""}),
    ("queue", {"queue": "a b"}),
    ("queue", {"queue": "q" * (MAX_ID_LENGTH + 1)}),
    ("task id", {"task_id": "../../../../etc/passwd"}),
    ("task id", {"task_id": ".."}),
    ("task id", {"task_id": 7}),
    ("depends_on", {"depends_on": "a/b"}),
    ("depends_on", {"depends_on": ["ok", ".."]}),
    ("depends_on", {"depends_on": 5}),
    ("depends_on", {"depends_on": [None]}),
    ("on_success", {"on_success": 5}),
    ("on_failure", {"on_failure": [5]}),
    ("key", {"key": ""}),
    ("key", {"key": 5}),
    ("worker", {"worker": []}),
    ("worker", {"worker": "fork"}),
    ("metadata", {"metadata": 5}),
    ("metadata", {"metadata": {1: "x"}}),
    ("metadata", {"metadata": {"x": math.nan}}),
    ("metadata", {"metadata": {"x": object()}}),
]


@pytest.mark.parametrize(("option", "options"), REFUSED, ids=lambda v: repr(v)[:40])
def test_bad_option_is_refused_naming_it(option: str, options: dict[str, Any]) -> None:
    with pytest.raises(InvalidTaskError, match=re.escape(option)):
        build_task(SERIALIZER, SETTINGS, target, (), None, **options)


@pytest.mark.parametrize(
    ("args", "kwargs", "what"),
    [
        ("hello", None, "args"),
        (b"hello", None, "args"),
        ({"a": 1}, None, "args"),
        (5, None, "args"),
        ((), [("a", 1)], "kwargs"),
        ((), {1: 2}, "kwargs"),
        ((), "k=v", "kwargs"),
    ],
)
def test_bad_call_arguments_are_refused(args: Any, kwargs: Any, what: str) -> None:
    with pytest.raises(InvalidTaskError, match=what):
        build_task(SERIALIZER, SETTINGS, target, args, kwargs)


@pytest.mark.parametrize("path", ["m", ":f", "m:", "a b:c", "m:f(1)", "../x:y", "m:f\x00"])
def test_bad_task_paths_are_refused(path: str) -> None:
    with pytest.raises(InvalidTaskError, match="module:qualname"):
        build_task(SERIALIZER, SETTINGS, path)


def test_aware_datetimes_and_timedeltas_are_accepted() -> None:
    eta = datetime.now(timezone(timedelta(hours=5))) + timedelta(hours=1)
    task = build_task(SERIALIZER, SETTINGS, target, eta=eta, ttl=timedelta(minutes=5))
    assert task.eta == pytest.approx(eta.timestamp())
    assert task.expires_at == pytest.approx(eta.timestamp() + 300)
    assert build_task(SERIALIZER, SETTINGS, target, ttl=0, timeout=0).timeout is None


# -- the same refusals through OmniQ.enqueue on every backend ------------------------------

BACKENDS = {spec.id: spec for spec in builtin_specs()}
E2E_BACKENDS = ["memory", "sqlite", "file-local", "postgres", "redis", "nats"]


@pytest.fixture(params=E2E_BACKENDS)
async def oq(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[OmniQ]:
    spec = BACKENDS[request.param]
    url = spec.url(tmp_path)
    open_storage(url)  # a missing driver or unknown scheme fails here, loudly
    try:
        async with OmniQ(url) as q:
            yield q
    finally:
        if spec.cleanup is not None:
            spec.cleanup(url)


ENGINE_CASES = [
    {"eta": math.nan},
    {"eta": math.inf},
    {"delay": 1e308},
    {"timeout": math.nan},
    {"ttl": math.nan},
    {"max_retries": 2.5},
    {"priority": "5"},
    {"priority": 2**63},
    {"queue": 123},
    {"task_id": "../../../../etc/passwd"},
    {"depends_on": ["../x"]},
]


@pytest.mark.anyio
async def test_engines_never_see_bad_options(oq: OmniQ) -> None:
    for options in ENGINE_CASES:
        with pytest.raises(InvalidTaskError):
            await oq.enqueue(target, (), None, **options)
        with pytest.raises(InvalidTaskError):
            await oq.enqueue_many([(target, ())], **options)
    with pytest.raises(InvalidTaskError, match="args"):
        await oq.enqueue(target, "hello")  # type: ignore[arg-type]
    assert await oq.list_tasks() == []


@pytest.mark.anyio
async def test_engines_store_tasks_at_the_edges_of_the_bounds(oq: OmniQ) -> None:
    far = datetime.now(UTC) + timedelta(days=99 * 365)
    top = await oq.enqueue(target, (), None, priority=PRIORITY_MAX, task_id="edge:top")
    low = await oq.enqueue(target, (), None, priority=PRIORITY_MIN, task_id="edge_low.1")
    later = await oq.enqueue(
        target, (), None, eta=far, ttl=MAX_HORIZON_SECONDS, max_retries=MAX_RETRIES
    )
    for given_task in (top, low, later):
        got = await oq.get_task(given_task.id)
        assert got is not None and got.status is TaskStatus.PENDING
        assert (got.priority, got.eta, got.expires_at, got.max_retries) == (
            given_task.priority,
            given_task.eta,
            given_task.expires_at,
            given_task.max_retries,
        )
    pending = await oq.list_tasks(status=TaskStatus.PENDING)
    assert {t.id for t in pending} == {top.id, low.id, later.id}
