"""Numeric settings have floors and ceilings; URLs are printed with passwords hidden."""

from __future__ import annotations

import pytest

from omniq.config import FIELD_RULES, EnvConfig, Settings
from omniq.models import MAX_HORIZON_SECONDS, MAX_RETRIES, ConfigError


@pytest.mark.parametrize(
    ("variable", "text"),
    [
        ("OMNIQ_LEASE_SECONDS", "0.001"),
        ("OMNIQ_LEASE_SECONDS", "0.5"),
        ("OMNIQ_LEASE_SECONDS", "86401"),
        ("OMNIQ_SHUTDOWN_GRACE", "1e9"),
        ("OMNIQ_MAX_WORKERS", "0"),
        ("OMNIQ_MAX_WORKERS", "10001"),
        ("OMNIQ_THREAD_WORKERS", "1001"),
        ("OMNIQ_PROCESS_WORKERS", "100000"),
        ("OMNIQ_GEVENT_WORKERS", "100001"),
        ("OMNIQ_TASK_TIMEOUT", "1e308"),
        ("OMNIQ_TASK_TIMEOUT", "nan"),
        ("OMNIQ_TASK_TTL", "inf"),
        ("OMNIQ_RESULT_TTL", "1e12"),
        ("OMNIQ_RETRY_DELAY", "-0.5"),
        ("OMNIQ_RETRY_ATTEMPTS", str(MAX_RETRIES + 1)),
        ("OMNIQ_EVENT_BUFFER_SIZE", "0"),
        ("OMNIQ_EVENT_BUFFER_SIZE", "100000000"),
        ("OMNIQ_EVENT_RETENTION_COUNT", str(2**31)),
        ("OMNIQ_MAX_PAYLOAD_BYTES", str(2**40)),
        ("OMNIQ_DEFAULT_QUEUE", "../etc"),
        ("OMNIQ_DEFAULT_QUEUE", "with space"),
    ],
)
def test_out_of_bounds_variable_fails_naming_it_and_the_range(variable: str, text: str) -> None:
    with pytest.raises(ConfigError) as info:
        EnvConfig({variable: text}).settings()
    assert info.value.name == variable
    message = str(info.value)
    assert message.startswith(f"{variable}={text!r} is invalid: expected ")
    field = variable.removeprefix("OMNIQ_").lower()
    assert info.value.accepted == FIELD_RULES[field].accepted


def test_lease_bounds_are_stated_in_the_message() -> None:
    with pytest.raises(ConfigError, match=r"from 1 to 86400"):
        EnvConfig({"OMNIQ_LEASE_SECONDS": "0.001"}).settings()
    assert Settings(lease_seconds=1).lease_seconds == 1.0
    assert Settings(lease_seconds=86400).lease_seconds == 86400.0


def test_zero_keeps_its_documented_meaning() -> None:
    s = Settings(task_timeout=0, task_ttl=0, result_ttl=0, shutdown_grace=0, retry_delay=0)
    assert (s.task_timeout, s.task_ttl, s.result_ttl, s.shutdown_grace) == (0.0, 0.0, 0.0, 0.0)
    assert Settings(task_ttl=MAX_HORIZON_SECONDS).task_ttl == MAX_HORIZON_SECONDS


def test_constructor_arguments_are_bounded_too() -> None:
    with pytest.raises(ConfigError) as info:
        Settings(lease_seconds=0.001)
    assert info.value.name == "lease_seconds"
    with pytest.raises(ConfigError, match="thread_workers"):
        Settings().replace(thread_workers=10**6)


@pytest.mark.parametrize(
    "url",
    [
        "redis://:hunter2@cache:6379/0",
        "postgresql://omniq:hunter2@db1:5432,db2:5432/jobs",
        "nats://hunter2@nats:4222",
        "redis://cache:6379/0?password=hunter2",
    ],
)
def test_urls_are_redacted_in_repr(url: str) -> None:
    s = Settings(task_queue_url=url, result_storage_url=url, event_storage_url=url)
    text = repr(s)
    assert "hunter2" not in text
    assert "***" in text


@pytest.mark.parametrize(
    "url",
    [
        "redis://:hunter2@cache:notaport/0",
        "postgresql://u:pa/hunter2@db/x",
        "redis://:hunter2@cache:6379/0 trailing",
    ],
)
def test_urls_are_redacted_in_config_errors(url: str) -> None:
    with pytest.raises(ConfigError) as info:
        EnvConfig({"OMNIQ_TASK_QUEUE_URL": url}).settings()
    assert info.value.name == "OMNIQ_TASK_QUEUE_URL"
    assert "hunter2" not in str(info.value)
    assert "hunter2" not in repr(info.value.value)
    with pytest.raises(ConfigError) as info2:
        Settings(result_storage_url=url)
    assert "hunter2" not in str(info2.value)
