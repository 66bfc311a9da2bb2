"""Task id, queue name, key and metadata rules, and the bounds validate_task enforces."""

from __future__ import annotations

import math

import msgspec
import pytest

from omniq.models import (
    MAX_HORIZON_SECONDS,
    MAX_ID_LENGTH,
    MAX_KEY_LENGTH,
    MAX_RETRIES,
    PRIORITY_MAX,
    PRIORITY_MIN,
    InvalidTaskError,
    Task,
    new_id,
    now,
    validate_key,
    validate_metadata,
    validate_queue_name,
    validate_task,
    validate_task_id,
)


@pytest.mark.parametrize(
    "value",
    ["a", "t1", "_x", "0", "report:2026-12-01", "a.b_c-d:e", "A" * MAX_ID_LENGTH, new_id()],
)
def test_valid_ids_and_queue_names(value: str) -> None:
    assert validate_task_id(value) == value
    assert validate_queue_name(value) == value


@pytest.mark.parametrize(
    "value",
    [
        "",
        ".",
        "..",
        ".hidden",
        "-flag",
        "../../../../etc/passwd",
        "a/b",
        "a\\b",
        "a b",
        "a\x00b",
        "é",
        "a" * (MAX_ID_LENGTH + 1),
        "x\n",
    ],
)
def test_invalid_ids_are_refused(value: str) -> None:
    with pytest.raises(InvalidTaskError, match="A-Z a-z 0-9"):
        validate_task_id(value)
    with pytest.raises(InvalidTaskError, match="queue"):
        validate_queue_name(value)


@pytest.mark.parametrize("value", [None, 1, b"abc", ["a"]])
def test_non_string_ids_are_refused(value: object) -> None:
    with pytest.raises(InvalidTaskError, match="must be a str"):
        validate_task_id(value)


def test_long_values_are_shortened_in_the_message() -> None:
    with pytest.raises(InvalidTaskError) as info:
        validate_task_id("/" * 10_000)
    assert len(str(info.value)) < 300


@pytest.mark.parametrize("value", ["k", "user@example.com", "nightly@2026-12-01T00:00", "ü" * 10])
def test_valid_keys(value: str) -> None:
    assert validate_key(value) == value


@pytest.mark.parametrize("value", ["", "a\x00", "\ud800", "k" * (MAX_KEY_LENGTH + 1), 5])
def test_invalid_keys(value: object) -> None:
    with pytest.raises(InvalidTaskError, match="key"):
        validate_key(value)


def test_metadata_is_copied_and_normalized() -> None:
    given = {"a": (1, 2.5, "x"), "b": {"c": None, "d": True}}
    out = validate_metadata(given)
    assert out == {"a": [1, 2.5, "x"], "b": {"c": None, "d": True}}
    assert msgspec.msgpack.decode(msgspec.msgpack.encode(out)) == out
    assert msgspec.json.decode(msgspec.json.encode(out)) == out


@pytest.mark.parametrize(
    "value",
    [
        {1: "int key"},
        {"f": math.nan},
        {"f": math.inf},
        {"b": b"bytes"},
        {"o": object()},
        {"s": {1, 2}},
        {"i": 2**64},
        {"t": "a\x00"},
        [("a", 1)],
        "text",
    ],
)
def test_bad_metadata(value: object) -> None:
    with pytest.raises(InvalidTaskError, match="metadata"):
        validate_metadata(value)


def test_metadata_depth_is_bounded() -> None:
    deep: dict[str, object] = {}
    node = deep
    for _ in range(40):
        child: dict[str, object] = {}
        node["n"] = child
        node = child
    with pytest.raises(InvalidTaskError, match="nested"):
        validate_metadata(deep)


def _task(**fields: object) -> Task:
    return Task(**{"func": "m:f", **fields})  # type: ignore[arg-type]


def test_a_plain_task_is_valid() -> None:
    t = _task(priority=PRIORITY_MAX, max_retries=MAX_RETRIES, eta=now() + 60)
    assert validate_task(t) is t
    validate_task(_task(priority=PRIORITY_MIN))


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"id": "../x"}, "task id"),
        ({"queue": ""}, "queue"),
        ({"depends_on": ("ok", "a/b")}, "depends_on"),
        ({"key": ""}, "key"),
        ({"priority": PRIORITY_MAX + 1}, "priority"),
        ({"priority": PRIORITY_MIN - 1}, "priority"),
        ({"priority": True}, "priority"),
        ({"max_retries": -1}, "max_retries"),
        ({"max_retries": MAX_RETRIES + 1}, "max_retries"),
        ({"max_retries": 2.5}, "max_retries"),
        ({"eta": math.nan}, "eta"),
        ({"eta": math.inf}, "eta"),
        ({"eta": -1.0}, "eta"),
        ({"eta": now() + 2 * MAX_HORIZON_SECONDS}, "eta"),
        ({"expires_at": math.nan}, "expires_at"),
        ({"timeout": math.nan}, "timeout"),
        ({"timeout": -1.0}, "timeout"),
        ({"retry_delay": math.inf}, "retry_delay"),
        ({"retry_max_delay": -1.0}, "retry_max_delay"),
        ({"created_at": math.nan}, "created_at"),
        ({"metadata": {"x": math.nan}}, "metadata"),
        ({"func": ""}, "func"),
        ({"on_success": (Task(func="m:f", priority=2**40),)}, "priority"),
    ],
)
def test_out_of_bounds_fields_are_named(fields: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidTaskError, match=field):
        validate_task(_task(**fields))
