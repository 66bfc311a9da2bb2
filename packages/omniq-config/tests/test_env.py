"""EnvConfig: every OMNIQ_* variable parsed, garbage rejected naming the variable."""

from __future__ import annotations

import logging
import math
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from omniq.config import FIELD_RULES, EnvConfig, Settings
from omniq.models import ConfigError

# field -> (environment text, parsed value); one row per setting.
VALID: dict[str, tuple[str, Any]] = {
    "base_dir": ("/var/lib/omniq", "/var/lib/omniq"),
    "log_level": ("debug", "DEBUG"),
    "disable_logging": ("true", True),
    "component_log_levels": (
        '{"storage": "debug", "workers": "ERROR"}',
        {"storage": "DEBUG", "workers": "ERROR"},
    ),
    "task_queue_type": ("postgres", "postgres"),
    "task_queue_url": ("postgresql://u:p@127.0.0.1:5432/q", "postgresql://u:p@127.0.0.1:5432/q"),
    "result_storage_type": ("redis", "redis"),
    "result_storage_url": ("redis://127.0.0.1:6379/1", "redis://127.0.0.1:6379/1"),
    "event_storage_type": ("file", "file"),
    "event_storage_url": ("file:///tmp/events", "file:///tmp/events"),
    "fsspec_uri": ("memory://", "memory://"),
    "default_queue": ("emails", "emails"),
    "default_worker": ("process", "process"),
    "max_workers": ("32", 32),
    "thread_workers": ("8", 8),
    "process_workers": ("3", 3),
    "gevent_workers": ("500", 500),
    "event_loop": ("asyncio", "asyncio"),
    "task_timeout": ("0", 0.0),
    "task_ttl": ("3600", 3600.0),
    "retry_attempts": ("0", 0),
    "retry_delay": ("0.25", 0.25),
    "retry_max_delay": ("60", 60.0),
    "result_ttl": ("1.5e3", 1500.0),
    "lease_seconds": ("10", 10.0),
    "shutdown_grace": ("5", 5.0),
    "dependency_failure_policy": ("release", "release"),
    "dill_enabled": ("on", True),
    "dill_secret": ("s3cret", "s3cret"),
    "dill_key_id": ("k2", "k2"),
    "dill_previous_secrets": ('{"k0": "old"}', {"k0": "old"}),
    "allowed_modules": ("myapp.tasks, billing.*,*", ("myapp.tasks", "billing", "*")),
    "max_payload_bytes": ("1024", 1024),
    "event_buffer_size": ("100", 100),
    "event_retention_seconds": ("86400", 86400.0),
    "event_retention_count": ("1000", 1000),
    "tracing": ("yes", True),
}

# field -> garbage environment text
GARBAGE: dict[str, str] = {
    "base_dir": "  ",
    "log_level": "LOUD",
    "disable_logging": "maybe",
    "component_log_levels": "storage=DEBUG",
    "task_queue_type": "my/sql",
    "task_queue_url": "not a url",
    "result_storage_type": "s3:",
    "result_storage_url": "http://[::1",
    "event_storage_type": "nats jetstream",
    "event_storage_url": "localhost",
    "fsspec_uri": "::",
    "default_queue": "",
    "default_worker": "fork",
    "max_workers": "ten",
    "thread_workers": "0",
    "process_workers": "2.5",
    "gevent_workers": "-1",
    "event_loop": "trio",
    "task_timeout": "5m",
    "task_ttl": "abc",
    "retry_attempts": "three",
    "retry_delay": "nan",
    "retry_max_delay": "inf",
    "result_ttl": "-1",
    "lease_seconds": "0",
    "shutdown_grace": "",
    "dependency_failure_policy": "drop",
    "dill_enabled": "2",
    "dill_secret": "",  # invalid only together with dill_enabled, tested separately
    "dill_key_id": " ",
    "dill_previous_secrets": '{"k0": 5}',
    "allowed_modules": "myapp tasks",
    "max_payload_bytes": "16MB",
    "event_buffer_size": "1e3",
    "event_retention_seconds": "forever",
    "event_retention_count": "-5",
    "tracing": "maybe",
}


def test_tables_cover_every_setting() -> None:
    assert set(VALID) == set(GARBAGE) == set(FIELD_RULES)


# The variables spec.md lists (BASE_DIR is its example), one per line.
SPEC_VARIABLES = [
    "OMNIQ_BASE_DIR",
    "OMNIQ_COMPONENT_LOG_LEVELS",
    "OMNIQ_DEFAULT_WORKER",
    "OMNIQ_DISABLE_LOGGING",
    "OMNIQ_EVENT_STORAGE_TYPE",
    "OMNIQ_EVENT_STORAGE_URL",
    "OMNIQ_FSSPEC_URI",
    "OMNIQ_GEVENT_WORKERS",
    "OMNIQ_LOG_LEVEL",
    "OMNIQ_MAX_WORKERS",
    "OMNIQ_PROCESS_WORKERS",
    "OMNIQ_RESULT_STORAGE_TYPE",
    "OMNIQ_RESULT_STORAGE_URL",
    "OMNIQ_RESULT_TTL",
    "OMNIQ_RETRY_ATTEMPTS",
    "OMNIQ_RETRY_DELAY",
    "OMNIQ_TASK_QUEUE_TYPE",
    "OMNIQ_TASK_QUEUE_URL",
    "OMNIQ_TASK_TIMEOUT",
    "OMNIQ_TASK_TTL",
    "OMNIQ_THREAD_WORKERS",
]


def test_every_spec_variable_is_known() -> None:
    known = {EnvConfig.variable(f) for f in FIELD_RULES}
    assert set(SPEC_VARIABLES) <= known


@pytest.mark.parametrize("field", sorted(VALID))
def test_each_variable_is_parsed(field: str) -> None:
    text, expected = VALID[field]
    var = EnvConfig.variable(field)
    env = {var: text}
    if field == "dill_enabled":
        env["OMNIQ_DILL_SECRET"] = "x"
    assert EnvConfig(env).overrides()[field] == expected
    assert getattr(EnvConfig(env).settings(), field) == expected


def test_all_variables_together() -> None:
    env = {EnvConfig.variable(f): text for f, (text, _) in VALID.items()}
    s = EnvConfig(env).settings()
    assert {f: getattr(s, f) for f in VALID} == {f: v for f, (_, v) in VALID.items()}


@pytest.mark.parametrize("field", sorted(set(GARBAGE) - {"dill_secret"}))
def test_garbage_names_the_variable(field: str) -> None:
    var = EnvConfig.variable(field)
    with pytest.raises(ConfigError) as info:
        EnvConfig({var: GARBAGE[field]}).settings()
    assert info.value.name == var
    assert str(info.value).startswith(f"{var}=")
    assert info.value.accepted == FIELD_RULES[field].accepted


def test_message_format() -> None:
    with pytest.raises(ConfigError) as info:
        EnvConfig({"OMNIQ_TASK_TTL": "abc"}).settings()
    assert str(info.value) == (
        "OMNIQ_TASK_TTL='abc' is invalid: expected a number of seconds from 0 to 100 years"
        " (0 = never expires)"
    )


def test_cross_field_error_names_the_variable() -> None:
    with pytest.raises(ConfigError) as info:
        EnvConfig({"OMNIQ_RETRY_MAX_DELAY": "0.5"}).settings()
    assert info.value.name == "OMNIQ_RETRY_MAX_DELAY"
    with pytest.raises(ConfigError, match="OMNIQ_DILL_SECRET"):
        EnvConfig({"OMNIQ_DILL_ENABLED": "yes", "OMNIQ_DILL_SECRET": ""}).settings()


@pytest.mark.parametrize(
    ("text", "value"),
    [(t, True) for t in ("1", "true", "TRUE", "Yes", "on", " On ")]
    + [(t, False) for t in ("0", "false", "False", "no", "OFF")],
)
def test_booleans(text: str, value: bool) -> None:
    assert EnvConfig({"OMNIQ_DISABLE_LOGGING": text}).overrides()["disable_logging"] is value


@pytest.mark.parametrize("text", ["", "y", "2", "enabled", "truee", "null"])
def test_bad_booleans(text: str) -> None:
    with pytest.raises(ConfigError, match="OMNIQ_DISABLE_LOGGING"):
        EnvConfig({"OMNIQ_DISABLE_LOGGING": text}).overrides()


@pytest.mark.parametrize("text", ["[]", '"DEBUG"', "{", '{"storage": 1}', '{"": "DEBUG"}', "null"])
def test_bad_json_shapes(text: str) -> None:
    with pytest.raises(ConfigError, match="OMNIQ_COMPONENT_LOG_LEVELS"):
        EnvConfig({"OMNIQ_COMPONENT_LOG_LEVELS": text}).overrides()


def test_secret_not_echoed() -> None:
    with pytest.raises(ConfigError) as info:
        EnvConfig({"OMNIQ_DILL_PREVIOUS_SECRETS": '{"k0": "hunter2", "k1": 3}'}).overrides()
    assert "hunter2" not in str(info.value)


def test_unknown_variables_warn_with_close_matches(caplog: pytest.LogCaptureFixture) -> None:
    env = {"OMNIQ_TASK_TLL": "5", "OMNIQ_ZZZ": "1", "PATH": "/bin"}
    with caplog.at_level(logging.WARNING, logger="omniq.config"):
        s = EnvConfig(env).settings()
    assert s == Settings()
    assert EnvConfig(env).unknown() == ["OMNIQ_TASK_TLL", "OMNIQ_ZZZ"]
    text = caplog.text
    assert "OMNIQ_TASK_TLL" in text and "did you mean OMNIQ_TASK_TTL" in text
    assert "OMNIQ_ZZZ" in text


def test_reads_os_environ_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMNIQ_MAX_WORKERS", "7")
    assert EnvConfig().settings().max_workers == 7


_INT_FIELDS = [f for f, (_, v) in VALID.items() if type(v) is int]
_FLOAT_FIELDS = [f for f, (_, v) in VALID.items() if type(v) is float]


def _not_a_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return True
    return False


@given(st.sampled_from(_INT_FIELDS + _FLOAT_FIELDS), st.text().filter(_not_a_number))
@example("max_workers", "1\x1f")  # int() alone drops the Unicode separator
def test_non_numeric_text_always_rejected(field: str, text: str) -> None:
    var = EnvConfig.variable(field)
    with pytest.raises(ConfigError) as info:
        EnvConfig({var: text}).overrides()
    assert info.value.name == var and info.value.value == text


def _bounds(field: str) -> tuple[float, float]:
    bounds = FIELD_RULES[field].bounds
    assert bounds is not None
    return bounds


@given(st.sampled_from(_INT_FIELDS), st.data())
def test_valid_integers_round_trip(field: str, data: st.DataObject) -> None:
    low, high = _bounds(field)
    value = data.draw(st.integers(min_value=int(low), max_value=int(high)))
    assert EnvConfig({EnvConfig.variable(field): str(value)}).overrides()[field] == value


@given(st.sampled_from(_INT_FIELDS + _FLOAT_FIELDS), st.data())
def test_values_beyond_the_bounds_rejected(field: str, data: st.DataObject) -> None:
    low, high = _bounds(field)
    value = data.draw(
        st.one_of(
            st.integers(min_value=int(high) + 1),
            st.integers(max_value=math.ceil(low) - 1),
        )
    )
    var = EnvConfig.variable(field)
    with pytest.raises(ConfigError) as info:
        EnvConfig({var: str(value)}).overrides()
    assert info.value.name == var and "from" in info.value.accepted


@given(st.sampled_from(_INT_FIELDS), st.integers(max_value=-1))
def test_negative_integers_rejected(field: str, value: int) -> None:
    with pytest.raises(ConfigError):
        EnvConfig({EnvConfig.variable(field): str(value)}).overrides()


@given(st.sampled_from(_FLOAT_FIELDS), st.data())
def test_valid_seconds_round_trip(field: str, data: st.DataObject) -> None:
    low, high = _bounds(field)
    value = data.draw(st.floats(min_value=low, max_value=high))
    parsed = EnvConfig({EnvConfig.variable(field): repr(value)}).overrides()[field]
    assert parsed == value and math.isfinite(parsed)


@given(st.sampled_from(_FLOAT_FIELDS), st.floats().filter(lambda x: not (x >= 0 and x < math.inf)))
def test_negative_or_non_finite_seconds_rejected(field: str, value: float) -> None:
    with pytest.raises(ConfigError):
        EnvConfig({EnvConfig.variable(field): repr(value)}).overrides()


@given(
    st.text().filter(
        lambda t: t.strip().lower() not in {"1", "0", "true", "false", "yes", "no", "on", "off"}
    )
)
def test_bool_garbage_always_rejected(text: str) -> None:
    with pytest.raises(ConfigError, match="OMNIQ_DILL_ENABLED"):
        EnvConfig({"OMNIQ_DILL_ENABLED": text}).overrides()
