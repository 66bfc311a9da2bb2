"""Flow-limit specs: parsing, validation and the key a task's limits fall under."""

from __future__ import annotations

import pytest

from omniq.models import (
    InvalidTaskError,
    LimitSpec,
    RateSpec,
    Task,
    limit_of,
    parse_rate,
    validate_task,
)


@pytest.mark.parametrize(
    ("spec", "want"),
    [("50/s", RateSpec(50, 1.0)), ("10/m", RateSpec(10, 60.0)), (" 3 / h ", RateSpec(3, 3600.0))],
)
def test_parse_rate(spec: str, want: RateSpec) -> None:
    assert parse_rate(spec) == want


@pytest.mark.parametrize("bad", ["10/x", "0/s", "-1/s", "1.5/s", "s", "", 10, None])
def test_parse_rate_refuses_bad_specs(bad: object) -> None:
    with pytest.raises(InvalidTaskError, match="rate_limit"):
        parse_rate(bad)


def test_limit_key_defaults_to_the_function() -> None:
    assert limit_of(Task(func="m:f")) is None
    assert limit_of(Task(func="m:f", max_concurrency=2)) == LimitSpec("m:f", 2, None)
    t = Task(func="m:f", rate_limit="5/m", limit_key="api")
    assert limit_of(t) == LimitSpec("api", None, RateSpec(5, 60.0))


def test_validate_task_checks_limits() -> None:
    with pytest.raises(InvalidTaskError, match="max_concurrency"):
        validate_task(Task(func="m:f", max_concurrency=0))
    with pytest.raises(InvalidTaskError, match="rate_limit"):
        validate_task(Task(func="m:f", rate_limit="7/d"))
