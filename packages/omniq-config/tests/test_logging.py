"""LoggingConfig: levels for the omniq.* loggers only, DISABLED silences all of them."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from omniq.config import ConfigProvider, LoggingConfig, get_logger
from omniq.models import ConfigError


@pytest.fixture(autouse=True)
def _restore() -> Iterator[None]:
    root_handlers = list(logging.getLogger().handlers)
    yield
    LoggingConfig().apply()
    omniq = logging.getLogger("omniq")
    omniq.setLevel(logging.NOTSET)
    assert logging.getLogger().handlers == root_handlers  # never touches the root logger


def _emit_all() -> None:
    for name in ("", "storage", "storage.sqlite", "workers"):
        log = get_logger(name)
        log.debug("debug from %s", log.name)
        log.info("info from %s", log.name)
        log.error("error from %s", log.name)


def _captured(caplog: pytest.LogCaptureFixture) -> set[tuple[str, str]]:
    return {(r.name, r.levelname) for r in caplog.records}


def test_get_logger_names() -> None:
    assert get_logger().name == "omniq"
    assert get_logger("storage").name == "omniq.storage"
    assert get_logger("omniq.events").name == "omniq.events"


def test_level_and_component_levels(caplog: pytest.LogCaptureFixture) -> None:
    LoggingConfig(level="WARNING", component_levels={"storage": "DEBUG"}).apply()
    with caplog.at_level(logging.DEBUG):
        _emit_all()
    got = _captured(caplog)
    assert ("omniq.storage", "DEBUG") in got
    assert ("omniq.storage.sqlite", "DEBUG") in got  # children inherit the component level
    assert ("omniq.workers", "INFO") not in got
    assert ("omniq.workers", "ERROR") in got
    assert ("omniq", "INFO") not in got


@pytest.mark.parametrize(
    "config",
    [
        LoggingConfig(level="DISABLED", component_levels={"storage": "DEBUG"}),
        LoggingConfig(disabled=True, component_levels={"storage": "DEBUG"}),
    ],
)
def test_disabled_silences_everything(
    config: LoggingConfig, caplog: pytest.LogCaptureFixture
) -> None:
    config.apply()
    with caplog.at_level(logging.DEBUG):
        _emit_all()
    assert caplog.records == []
    assert not logging.getLogger("omniq").propagate


def test_component_disabled_alone(caplog: pytest.LogCaptureFixture) -> None:
    LoggingConfig(level="DEBUG", component_levels={"storage": "DISABLED"}).apply()
    with caplog.at_level(logging.DEBUG):
        _emit_all()
    names = {n for n, _ in _captured(caplog)}
    assert names == {"omniq", "omniq.workers"}


def test_apply_is_idempotent_and_reverts_components() -> None:
    cfg = LoggingConfig(level="ERROR", component_levels={"storage": "DEBUG"})
    cfg.apply()
    cfg.apply()
    omniq = logging.getLogger("omniq")
    assert sum(isinstance(h, logging.NullHandler) for h in omniq.handlers) == 1
    assert omniq.level == logging.ERROR
    assert logging.getLogger("omniq.storage").level == logging.DEBUG
    LoggingConfig(level="INFO").apply()
    assert logging.getLogger("omniq.storage").level == logging.NOTSET
    assert omniq.propagate and omniq.level == logging.INFO


def test_from_settings_and_env(caplog: pytest.LogCaptureFixture) -> None:
    env = {
        "OMNIQ_LOG_LEVEL": "error",
        "OMNIQ_COMPONENT_LOG_LEVELS": '{"workers": "info"}',
    }
    cfg = LoggingConfig.from_settings(ConfigProvider(env=env).settings)
    assert cfg == LoggingConfig(level="ERROR", component_levels={"workers": "INFO"})
    cfg.apply()
    with caplog.at_level(logging.DEBUG):
        _emit_all()
    got = _captured(caplog)
    assert ("omniq.workers", "INFO") in got and ("omniq.storage", "INFO") not in got
    env["OMNIQ_DISABLE_LOGGING"] = "1"
    LoggingConfig.from_settings(ConfigProvider(env=env).settings).apply()
    caplog.clear()
    with caplog.at_level(logging.DEBUG):
        _emit_all()
    assert caplog.records == []


def test_follows_runtime_updates(caplog: pytest.LogCaptureFixture) -> None:
    p = ConfigProvider(env={})
    p.subscribe(lambda old, new: LoggingConfig.from_settings(new).apply())
    p.update(log_level="DISABLED")
    with caplog.at_level(logging.DEBUG):
        get_logger("core").error("hidden")
    p.update(log_level="INFO")
    with caplog.at_level(logging.DEBUG):
        get_logger("core").error("shown")
    assert [r.getMessage() for r in caplog.records] == ["shown"]


def test_validates() -> None:
    with pytest.raises(ConfigError):
        LoggingConfig(level="LOUD")
    with pytest.raises(ConfigError):
        LoggingConfig(component_levels={"storage": "LOUD"})
