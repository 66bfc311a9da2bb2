"""SerializationDetector: exactly the values msgpack round-trips are compatible."""

from __future__ import annotations

import collections
import datetime as dt
import decimal
import enum
import math
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from omniq.serialization import INT_MAX, INT_MIN, SerializationDetector

UTC = dt.UTC
DECODER = msgspec.msgpack.Decoder()
ENCODER = msgspec.msgpack.Encoder()

fixed_zones = st.just(UTC) | st.integers(-1439, 1439).map(
    lambda m: dt.timezone(dt.timedelta(minutes=m))
)
aware_datetimes = st.datetimes(
    min_value=dt.datetime(2, 1, 1), max_value=dt.datetime(9998, 12, 31), timezones=fixed_zones
)
scalars = (
    st.none()
    | st.booleans()
    | st.integers(INT_MIN, INT_MAX)
    | st.floats(allow_nan=False)
    | st.text()
    | st.binary()
    | aware_datetimes
)
keys = st.text() | st.integers(INT_MIN, INT_MAX)
compatible = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=5)
        | st.lists(children, max_size=5).map(tuple)
        | st.dictionaries(keys, children, max_size=5)
    ),
    max_leaves=30,
)


class Color(enum.IntEnum):
    RED = 1


class Point:
    def __init__(self, x: int) -> None:
        self.x = x


incompatible_leaves = st.sampled_from(
    [
        {1, 2},
        frozenset({3}),
        Point(1),
        dt.datetime(2020, 1, 1),  # naive
        2**64,
        -(2**63) - 1,
        Color.RED,
        collections.OrderedDict(a=1),
        bytearray(b"x"),
        decimal.Decimal("1.5"),
        1 + 2j,
        lambda: None,
        dt.date(2020, 1, 1),
        dt.datetime(1, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=1))),  # UTC before year 1
    ]
)


def _embed(leaf: Any, path: list[int]) -> Any:
    """Put ``leaf`` at the bottom of a small nest of lists/dicts chosen by ``path``."""
    value = leaf
    for step in path:
        value = [0, value] if step % 2 else {"k": value, "n": None}
    return value


incompatible = st.builds(_embed, incompatible_leaves, st.lists(st.integers(0, 3), max_size=4))


def expected_after_roundtrip(value: Any) -> Any:
    """What msgpack gives back: tuples become lists, aware datetimes come back in UTC."""
    if type(value) in (list, tuple):
        return [expected_after_roundtrip(v) for v in value]
    if type(value) is dict:
        return {k: expected_after_roundtrip(v) for k, v in value.items()}
    if type(value) is dt.datetime:
        return value.astimezone(UTC)
    return value


def assert_exact(got: Any, want: Any) -> None:
    """Equal values of identical types all the way down (floats bit for bit)."""
    assert type(got) is type(want), (got, want)
    if type(want) is list:
        assert len(got) == len(want)
        for g, w in zip(got, want, strict=True):
            assert_exact(g, w)
    elif type(want) is dict:
        assert list(got) == list(want)
        for k in want:
            assert type(next(x for x in got if x == k)) is type(k)
            assert_exact(got[k], want[k])
    elif type(want) is float:
        assert math.copysign(1, got) == math.copysign(1, want)
        assert got == want
    elif type(want) is dt.datetime:
        assert got == want and got.tzinfo == UTC
    else:
        assert got == want


@given(compatible)
def test_compatible_values_roundtrip_exactly(value: Any) -> None:
    detector = SerializationDetector()
    assert detector.is_compatible(value)
    assert detector.explain(value) is None
    assert_exact(DECODER.decode(ENCODER.encode(value)), expected_after_roundtrip(value))


@given(incompatible)
def test_incompatible_values_are_detected(value: Any) -> None:
    detector = SerializationDetector()
    assert not detector.is_compatible(value)
    assert detector.explain(value) is not None
    assert not detector.is_call_compatible((value,), {})
    assert not detector.is_call_compatible((), {"x": value})


@given(st.lists(compatible, max_size=4).map(tuple), st.dictionaries(st.text(), compatible))
def test_call_compatibility_matches_elements(args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    detector = SerializationDetector()
    assert detector.is_call_compatible(args, kwargs)
    assert detector.explain_call(args, kwargs) is None


def test_nan_is_compatible() -> None:
    assert SerializationDetector().is_compatible([math.nan, -0.0, math.inf])


def test_int_range_boundaries() -> None:
    d = SerializationDetector()
    assert d.is_compatible(INT_MIN) and d.is_compatible(INT_MAX)
    assert not d.is_compatible(INT_MIN - 1) and not d.is_compatible(INT_MAX + 1)
    assert not d.is_compatible({INT_MAX + 1: 1})


def test_dict_key_types() -> None:
    d = SerializationDetector()
    assert d.is_compatible({"a": 1, 2: "b"})
    assert not d.is_compatible({(1, 2): 1})
    assert not d.is_compatible({1.5: 1})
    assert not d.is_compatible({True: 1})  # bool keys are not in the supported set
    assert "dict key of type tuple" in (d.explain({(1,): 1}) or "")


def test_datetimes() -> None:
    d = SerializationDetector()
    assert d.is_compatible(dt.datetime(2024, 3, 1, tzinfo=UTC))
    assert not d.is_compatible(dt.datetime(2024, 3, 1))
    assert "naive datetime" in (d.explain([dt.datetime(2024, 3, 1)]) or "")
    edge = dt.datetime(9999, 12, 31, 23, tzinfo=dt.timezone(dt.timedelta(hours=-2)))
    assert not d.is_compatible(edge)
    assert "outside years" in (d.explain(edge) or "")


def test_tuples_policy() -> None:
    assert SerializationDetector().is_compatible((1, (2, 3)))
    strict = SerializationDetector(allow_tuples=False)
    assert not strict.is_compatible((1, 2))
    assert not strict.is_compatible([1, (2,)])
    # The call's own args tuple is always fine; nested tuples follow the policy.
    assert strict.is_call_compatible((1, 2), {})
    assert not strict.is_call_compatible(((1,),), {})


def test_depth_cap_and_self_reference() -> None:
    d = SerializationDetector(max_depth=3)
    assert d.is_compatible([[[1]]])
    assert not d.is_compatible([[[[1]]]])
    assert "deeper than 3" in (d.explain([[[[1]]]]) or "")
    loop: list[Any] = []
    loop.append(loop)
    assert not SerializationDetector().is_compatible(loop)
    cyclic: dict[str, Any] = {}
    cyclic["me"] = cyclic
    assert not SerializationDetector().is_compatible(cyclic)
    assert SerializationDetector().explain(cyclic) is not None


def test_deep_but_allowed_nesting_has_no_recursion_problem() -> None:
    value: Any = 1
    for _ in range(127):
        value = [value]
    assert SerializationDetector().is_compatible(value)


def test_explain_names_type_and_location() -> None:
    d = SerializationDetector()
    assert d.explain({"a": [1, {2, 3}]}) == "value['a'][1] is of type set"
    found = d.explain_call((1, Point(2)), {}) or ""
    assert found.startswith("args[1] is of type") and found.endswith("Point")
    assert d.explain_call((), {"when": dt.datetime(2020, 1, 1)}) is not None
    assert d.explain_call([1], {}) == "args is a list, not a tuple"  # type: ignore[arg-type]
    assert d.explain_call((), {1: 2}) is not None  # type: ignore[dict-item]


def test_call_shape_is_checked() -> None:
    d = SerializationDetector()
    assert not d.is_call_compatible([1], {})  # type: ignore[arg-type]
    assert not d.is_call_compatible((), {1: 2})  # type: ignore[dict-item]
    assert d.is_call_compatible((), {})


@pytest.mark.parametrize("value", ["s", b"b", 1, 1.5, None, True, False])
def test_scalars(value: Any) -> None:
    assert SerializationDetector().is_compatible(value)
