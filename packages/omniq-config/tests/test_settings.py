"""Settings: one validated field per constant, defaults from omniq.models.settings."""

from __future__ import annotations

import math
from typing import Any

import msgspec
import pytest

from omniq.config import FIELD_RULES, Settings
from omniq.models import ConfigError
from omniq.models import settings as constants


def test_every_constant_has_a_field_with_its_default() -> None:
    names = {n.lower() for n in constants.__all__}
    assert names == set(Settings.__struct_fields__) == set(FIELD_RULES)
    s = Settings()
    for name in constants.__all__:
        assert getattr(s, name.lower()) == getattr(constants, name), name


def test_normalizes_case_and_numbers() -> None:
    s = Settings(log_level="debug", task_queue_type="Redis", task_ttl=5, lease_seconds=2)
    assert (s.log_level, s.task_queue_type) == ("DEBUG", "redis")
    assert isinstance(s.task_ttl, float) and s.task_ttl == 5.0
    assert Settings(component_log_levels={"omniq.storage": "debug"}).component_log_levels == {
        "storage": "DEBUG"
    }


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("base_dir", ""),
        ("log_level", "VERBOSE"),
        ("disable_logging", "yes"),
        ("component_log_levels", {"storage": "LOUD"}),
        ("component_log_levels", {"bad name": "DEBUG"}),
        ("task_queue_type", "my sql"),
        ("task_queue_type", ""),
        ("task_queue_url", "no scheme here"),
        ("task_queue_url", "redis://host:70000"),
        ("result_storage_type", "mongo://"),
        ("event_storage_type", "9redis"),
        ("fsspec_uri", "/plain/path"),
        ("default_queue", " "),
        ("default_worker", "fiber"),
        ("max_workers", 0),
        ("thread_workers", 1.5),
        ("process_workers", True),
        ("gevent_workers", -3),
        ("task_timeout", -1),
        ("task_ttl", math.inf),
        ("retry_attempts", -1),
        ("retry_delay", math.nan),
        ("result_ttl", "60"),
        ("lease_seconds", 0),
        ("shutdown_grace", -0.5),
        ("dependency_failure_policy", "ignore"),
        ("dill_enabled", 1),
        ("dill_key_id", ""),
        ("dill_previous_secrets", {"old": ""}),
        ("max_payload_bytes", 0),
        ("event_buffer_size", 0),
        ("event_retention_seconds", -1),
        ("event_retention_count", -1),
    ],
)
def test_invalid_values_name_the_field(field: str, value: Any) -> None:
    with pytest.raises(ConfigError) as info:
        Settings(**{field: value})
    assert info.value.name == field
    assert info.value.accepted == FIELD_RULES[field].accepted
    assert str(info.value).startswith(f"{field}=")


def test_empty_result_and_event_types_are_allowed() -> None:
    s = Settings(result_storage_type="", event_storage_type="")
    assert s.result_storage_type == s.event_storage_type == ""


def test_dill_needs_a_secret() -> None:
    with pytest.raises(ConfigError, match="OMNIQ_DILL_SECRET") as info:
        Settings(dill_enabled=True)
    assert info.value.name == "dill_secret"
    assert Settings(dill_enabled=True, dill_secret="s3cret").dill_enabled


def test_cross_field_rules() -> None:
    with pytest.raises(ConfigError) as info:
        Settings(retry_delay=10, retry_max_delay=5)
    assert info.value.name == "retry_max_delay"
    with pytest.raises(ConfigError) as info:
        Settings(dill_key_id="k2", dill_previous_secrets={"k2": "x"})
    assert info.value.name == "dill_previous_secrets"


def test_secrets_are_redacted() -> None:
    s = Settings(dill_secret="topsecret", dill_previous_secrets={"k0": "oldsecret"})
    assert "topsecret" not in repr(s) and "oldsecret" not in repr(s)
    with pytest.raises(ConfigError) as info:
        Settings(dill_previous_secrets={"": "oldsecret"})
    assert "oldsecret" not in str(info.value)


def test_frozen_and_replace_validates() -> None:
    s = Settings()
    with pytest.raises(AttributeError):
        s.task_ttl = 1.0  # type: ignore[misc]
    assert s.replace(task_ttl=1).task_ttl == 1.0
    with pytest.raises(ConfigError, match="did you mean task_ttl"):
        s.replace(task_tll=1)
    with pytest.raises(ConfigError):
        s.replace(max_workers=0)


def test_round_trips_through_msgspec() -> None:
    s = Settings(dill_enabled=True, dill_secret="x", component_log_levels={"storage": "DEBUG"})
    assert msgspec.json.decode(msgspec.json.encode(s), type=Settings) == s
