"""RetryManager, CircuitBreaker, DependencyResolver: pure policy, no storage."""

from __future__ import annotations

import pytest

from omniq.models import DependencyCycleError, Task
from omniq.queue import (
    BreakerRegistry,
    BreakerState,
    CircuitBreaker,
    DependencyResolver,
    RetryManager,
    RetryPolicy,
)


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_backoff_is_exponential_full_jitter_and_capped() -> None:
    seen: list[tuple[float, float]] = []

    def rng(lo: float, hi: float) -> float:
        seen.append((lo, hi))
        return hi

    mgr = RetryManager(RetryPolicy(max_delay=10.0), rng=rng)
    task = Task(func="m:f", max_retries=10, retry_delay=1.0)
    delays = [mgr.delay(task, attempt) for attempt in range(1, 7)]
    assert delays == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    assert all(lo == 0.0 for lo, _ in seen)


def test_jitter_spreads_delays_within_bounds() -> None:
    mgr = RetryManager()
    task = Task(func="m:f", max_retries=5, retry_delay=2.0, retry_max_delay=100.0)
    draws = {mgr.delay(task, 3) for _ in range(200)}
    assert all(0.0 <= d <= 8.0 for d in draws)
    assert len(draws) > 100


def test_task_policy_overrides_default() -> None:
    mgr = RetryManager(RetryPolicy(max_delay=1.0), rng=lambda lo, hi: hi)
    assert mgr.delay(Task(func="m:f", retry_delay=5.0), 1) == 1.0  # default cap
    assert mgr.delay(Task(func="m:f", retry_delay=5.0, retry_max_delay=50.0), 2) == 10.0


def test_should_retry_counts_attempts() -> None:
    mgr = RetryManager()
    task = Task(func="m:f", max_retries=2)
    assert mgr.should_retry(task, 1)
    assert mgr.should_retry(task, 2)
    assert not mgr.should_retry(task, 3)
    assert not mgr.should_retry(Task(func="m:f", max_retries=0), 1)


def test_breaker_opens_after_threshold_then_half_open_probe() -> None:
    clock = Clock()
    b = CircuitBreaker(threshold=3, cooldown=10.0, clock=clock)
    for _ in range(2):
        b.record_failure()
    assert b.state is BreakerState.CLOSED and b.allow()
    b.record_failure()
    assert b.state is BreakerState.OPEN
    assert not b.allow()
    assert b.retry_at() == 1010.0
    clock.t += 10.0
    assert b.state is BreakerState.HALF_OPEN
    assert b.allow()  # the one probe
    assert not b.allow()
    b.record_failure()  # probe failed: open again
    assert b.state is BreakerState.OPEN
    clock.t += 10.0
    assert b.allow()
    b.record_success()
    assert b.state is BreakerState.CLOSED and b.failures == 0


def test_success_resets_consecutive_count() -> None:
    b = CircuitBreaker(threshold=2, cooldown=1.0)
    b.record_failure()
    b.record_success()
    b.record_failure()
    assert b.state is BreakerState.CLOSED


def test_registry_is_per_key_and_can_be_disabled() -> None:
    reg = BreakerRegistry(threshold=1, cooldown=60.0)
    reg.record("a:f", False)
    assert not reg.allow("a:f")
    assert reg.allow("b:g")
    assert reg.states() == {"a:f": BreakerState.OPEN}
    off = BreakerRegistry(threshold=1, enabled=False)
    off.record("a:f", False)
    assert off.allow("a:f")


def test_cycle_detection_in_graph() -> None:
    DependencyResolver.check_graph({"a": ("b",), "b": ("c",), "c": ()})
    with pytest.raises(DependencyCycleError, match="a -> b -> a"):
        DependencyResolver.check_graph({"a": ("b",), "b": ("a",)})
    with pytest.raises(DependencyCycleError):
        DependencyResolver.check_graph({"a": ("a",)})


@pytest.mark.anyio
async def test_resolver_follows_stored_tasks() -> None:
    stored = {"s1": Task(func="m:f", id="s1", depends_on=("n1",))}
    calls: list[list[str]] = []

    async def fetch(ids: list[str]) -> list[Task | None]:
        calls.append(list(ids))
        return [stored.get(i) for i in ids]

    resolver = DependencyResolver(fetch)
    with pytest.raises(DependencyCycleError):
        await resolver.check([Task(func="m:f", id="n1", depends_on=("s1",))])
    await resolver.check([Task(func="m:f", id="n2", depends_on=("s1", "missing"))])
    calls.clear()
    await resolver.check([Task(func="m:f")])  # no deps: no round trip
    assert calls == []


def test_order_puts_dependencies_first() -> None:
    c = Task(func="m:f", id="c")
    b = Task(func="m:f", id="b", depends_on=("c",))
    a = Task(func="m:f", id="a", depends_on=("b", "c"))
    assert [t.id for t in DependencyResolver.order([a, b, c])] == ["c", "b", "a"]
    long = [Task(func="m:f", id=f"t{i}", depends_on=(f"t{i + 1}",)) for i in range(5000)]
    assert DependencyResolver.order(long)[0].id == "t4999"
