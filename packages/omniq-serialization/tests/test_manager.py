"""SerializationManager: format choice, call payloads, limits, settings, refusals."""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
from collections.abc import Mapping
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from omniq.models import ConfigError, Payload, SerializationError, settings
from omniq.serialization import SerializationManager, SerializationSettings

SECRET = "test-secret-0123456789abcdef"


@dataclasses.dataclass(frozen=True)
class Money:
    """A module-level class, so dill pickles it by reference and it compares by value."""

    amount: decimal.Decimal
    currency: str


def plain() -> SerializationManager:
    return SerializationManager()


def with_dill(**kw: Any) -> SerializationManager:
    return SerializationManager(dill_enabled=True, secret=SECRET, **kw)


json_like = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False)
    | st.text()
    | st.binary(),
    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(), c, max_size=4),
    max_leaves=20,
)

dill_only_leaves = (
    st.sets(st.integers())
    | st.frozensets(st.text(max_size=5))
    | st.builds(Money, st.decimals(allow_nan=False, allow_infinity=False), st.text(max_size=3))
    | st.datetimes()  # naive
    | st.integers(min_value=2**64)
    | st.complex_numbers(allow_nan=False)
)
dill_only = st.one_of(
    dill_only_leaves,
    st.lists(dill_only_leaves, min_size=1, max_size=3),
    st.dictionaries(st.text(max_size=3), dill_only_leaves, min_size=1, max_size=3),
    st.tuples(json_like, dill_only_leaves),
)


@given(json_like)
def test_compatible_values_use_msgpack_even_with_dill_enabled(value: Any) -> None:
    for manager in (plain(), with_dill()):
        payload = manager.dumps(value)
        assert payload.format == "msgpack"
        assert manager.loads(payload) == value


@given(dill_only)
def test_dill_only_values_roundtrip_with_dill(value: Any) -> None:
    manager = with_dill()
    payload = manager.dumps(value)
    assert payload.format == "dill"
    assert manager.loads(payload) == value


@given(dill_only)
def test_dill_only_values_refused_without_dill(value: Any) -> None:
    with pytest.raises(SerializationError, match="enable dill"):
        plain().dumps(value)


@given(st.lists(json_like, max_size=4).map(tuple), st.dictionaries(st.text(), json_like))
def test_call_roundtrip_msgpack(args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    manager = plain()
    payload = manager.dumps_call(args, kwargs)
    assert payload.format == "msgpack"
    got_args, got_kwargs = manager.loads_call(payload)
    assert type(got_args) is tuple
    assert got_args == args and got_kwargs == kwargs


@given(
    st.lists(dill_only, min_size=1, max_size=3).map(tuple), st.dictionaries(st.text(), dill_only)
)
def test_call_roundtrip_dill(args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    manager = with_dill()
    payload = manager.dumps_call(args, kwargs)
    assert payload.format == "dill"
    assert manager.loads_call(payload) == (args, kwargs)


def test_nested_tuples_come_back_as_lists_but_args_stay_a_tuple() -> None:
    manager = plain()
    args, kwargs = manager.loads_call(manager.dumps_call((1, (2, 3)), {"t": (4,)}))
    assert args == (1, [2, 3]) and kwargs == {"t": [4]}


def test_aware_datetime_comes_back_as_same_instant_in_utc() -> None:
    manager = plain()
    when = dt.datetime(2026, 3, 29, 2, 30, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    got = manager.loads(manager.dumps(when))
    assert got == when and got.tzinfo == dt.UTC


def test_error_names_the_offending_type_and_place() -> None:
    with pytest.raises(SerializationError) as info:
        plain().dumps_call((1,), {"tags": {"a", "b"}})
    message = str(info.value)
    assert "kwargs['tags'] is of type set" in message
    assert "OMNIQ_DILL_ENABLED" in message
    with pytest.raises(SerializationError, match=r"value\[0\] is a naive datetime"):
        plain().dumps([dt.datetime(2020, 1, 1)])


def test_call_arguments_must_be_tuple_and_dict() -> None:
    with pytest.raises(SerializationError, match="tuple and a dict"):
        with_dill().dumps_call([1], {})  # type: ignore[arg-type]


def test_unknown_format_is_refused() -> None:
    for manager in (plain(), with_dill()):
        with pytest.raises(SerializationError, match="unknown payload format 'pickle'"):
            manager.loads(Payload("pickle", b"\x80\x04N."))
        with pytest.raises(SerializationError, match="unknown payload format"):
            manager.loads_call(Payload("json", b"[]"))


def test_corrupt_msgpack_is_a_serialization_error() -> None:
    manager = plain()
    with pytest.raises(SerializationError, match="corrupt msgpack"):
        manager.loads(Payload("msgpack", b"\xc1"))
    with pytest.raises(SerializationError, match="corrupt msgpack call"):
        manager.loads_call(Payload("msgpack", manager.dumps({"not": "a call"}).data))
    with pytest.raises(SerializationError, match="must be bytes"):
        manager.loads(Payload("msgpack", "text"))  # type: ignore[arg-type]
    with pytest.raises(SerializationError, match="expected a Payload"):
        manager.loads(b"raw")  # type: ignore[arg-type]


def test_dill_call_payload_must_be_a_pair() -> None:
    manager = with_dill()
    not_a_call = manager.dumps({1, 2})
    with pytest.raises(SerializationError, match="not an \\(args, kwargs\\) pair"):
        manager.loads_call(not_a_call)


def test_oversized_payloads_refused_both_ways() -> None:
    for manager in (SerializationManager(max_size=64), with_dill(max_size=64)):
        with pytest.raises(SerializationError, match="exceeds the limit of 64 bytes"):
            manager.dumps("x" * 100)
        with pytest.raises(SerializationError, match="exceeds the limit"):
            manager.dumps_call(("x" * 100,), {})
        with pytest.raises(SerializationError, match="exceeds the limit"):
            manager.loads(Payload("msgpack", b"\x90" * 65))
        with pytest.raises(SerializationError, match="exceeds the limit"):
            manager.loads_call(Payload("msgpack", b"\x90" * 65))
    manager = with_dill(max_size=64)
    with pytest.raises(SerializationError, match="exceeds the limit"):
        manager.dumps(set(range(100)))
    # At the limit exactly is fine.
    exact = SerializationManager(max_size=len(plain().dumps("abc").data))
    assert exact.loads(exact.dumps("abc")) == "abc"


def test_configuration_errors() -> None:
    with pytest.raises(ConfigError, match="dill_secret"):
        SerializationManager(dill_enabled=True)
    with pytest.raises(ConfigError, match="dill_secret"):
        SerializationManager(dill_enabled=True, secret="")
    with pytest.raises(ConfigError, match="max_payload_bytes"):
        SerializationManager(max_size=0)
    with pytest.raises(ConfigError, match="dill_key_id"):
        SerializationManager(dill_enabled=True, secret=SECRET, key_id="")
    with pytest.raises(ConfigError, match="dill_key_id"):
        SerializationManager(dill_enabled=True, secret=SECRET, key_id="x" * 256)
    with pytest.raises(ConfigError, match="dill_previous_secrets"):
        SerializationManager(dill_enabled=True, secret=SECRET, previous_secrets={"old": ""})


def test_secret_is_never_echoed_in_config_errors() -> None:
    with pytest.raises(ConfigError) as info:
        SerializationManager(dill_enabled=True, secret=SECRET, previous_secrets={"k0": b""})
    assert SECRET not in str(info.value)


@dataclasses.dataclass
class FakeSettings:
    dill_enabled: bool = False
    dill_secret: str = ""
    dill_key_id: str = "k1"
    dill_previous_secrets: Mapping[str, str] = dataclasses.field(default_factory=dict)
    max_payload_bytes: int = settings.MAX_PAYLOAD_BYTES


def test_from_settings() -> None:
    off = SerializationManager.from_settings(FakeSettings())
    assert not off.dill_enabled and off.max_size == settings.MAX_PAYLOAD_BYTES
    on = SerializationManager.from_settings(
        FakeSettings(
            dill_enabled=True,
            dill_secret="new",
            dill_key_id="k2",
            dill_previous_secrets={"k1": "old"},
            max_payload_bytes=1000,
        )
    )
    assert on.dill_enabled and on.max_size == 1000
    old = SerializationManager(dill_enabled=True, secret="old", key_id="k1")
    assert on.loads(old.dumps({1})) == {1}
    assert isinstance(FakeSettings(), SerializationSettings)


def test_defaults_match_settings_constants() -> None:
    manager = plain()
    assert manager.dill_enabled is settings.DILL_ENABLED
    assert manager.max_size == settings.MAX_PAYLOAD_BYTES


def test_results_use_the_same_path() -> None:
    manager = with_dill()
    for result in (None, {"rows": [1, 2]}, Money(decimal.Decimal("2.50"), "EUR")):
        assert manager.loads(manager.dumps(result)) == result
