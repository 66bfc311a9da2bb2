"""store_urls/default_url: where each store lives when only a backend type is set."""

from __future__ import annotations

import pathlib
from collections.abc import Iterator

import pytest

from omniq.config import Settings
from omniq.models import ConfigError
from omniq.storage import (
    BACKENDS,
    MemoryBackend,
    default_url,
    event_store_url,
    register_backend,
    store_urls,
)


class RuleBackend(MemoryBackend):
    """Declares its own default-URL rule."""

    @classmethod
    def default_url(cls, settings: Settings, store: str) -> str | None:
        return f"rule://{settings.default_queue}/{store}"


class ServerBackend(MemoryBackend):
    """Has no embedded default: a URL must be configured."""

    @classmethod
    def default_url(cls, settings: Settings, store: str) -> str | None:
        return None


@pytest.fixture
def custom() -> Iterator[None]:
    register_backend("rule", RuleBackend)
    register_backend("srv", ServerBackend)
    yield
    BACKENDS.pop("rule")
    BACKENDS.pop("srv")


def test_embedded_defaults_live_under_base_dir(tmp_path: pathlib.Path) -> None:
    s = Settings(base_dir=str(tmp_path))
    assert default_url("sqlite", s) == f"sqlite:///{tmp_path.resolve() / 'omniq.db'}"
    assert default_url("memory", s) == "memory://"
    assert default_url("file", s) == f"file://{tmp_path.resolve() / 'store'}"
    fs = Settings(base_dir=str(tmp_path), fsspec_uri="memory://root")
    assert default_url("file", fs, "event_storage") == "memory://root"


def test_nothing_configured_is_sqlite_under_base_dir(tmp_path: pathlib.Path) -> None:
    urls = store_urls(Settings(base_dir=str(tmp_path)))
    assert urls.tasks == f"sqlite:///{tmp_path.resolve() / 'omniq.db'}"
    assert urls.results is None and urls.events is None
    assert urls.schedules == urls.tasks


@pytest.mark.parametrize("kind", ["sqlite", "memory", "file"])
def test_an_event_store_of_the_task_queue_type_is_the_task_queue(
    kind: str, tmp_path: pathlib.Path
) -> None:
    s = Settings(base_dir=str(tmp_path), task_queue_type=kind, event_storage_type=kind)
    urls = store_urls(s)
    assert urls.events == urls.tasks == default_url(kind, s)
    assert event_store_url(s) == urls.tasks
    explicit = s.replace(task_queue_url="sqlite:///elsewhere.db")
    assert store_urls(explicit).events == "sqlite:///elsewhere.db"
    assert event_store_url(explicit) == "sqlite:///elsewhere.db"


def test_explicit_urls_win_and_results_default_per_type(tmp_path: pathlib.Path) -> None:
    s = Settings(
        base_dir=str(tmp_path),
        task_queue_type="memory",
        result_storage_type="sqlite",
        event_storage_type="sqlite",
        event_storage_url="sqlite:///events-here.db",
    )
    urls = store_urls(s)
    assert urls.tasks == "memory://"
    assert urls.results == f"sqlite:///{tmp_path.resolve() / 'omniq.db'}"
    assert urls.events == "sqlite:///events-here.db"
    assert store_urls(s.replace(result_storage_type="memory")).results is None


@pytest.mark.parametrize(
    ("field", "var"),
    [
        ("task_queue_type", "OMNIQ_TASK_QUEUE_TYPE"),
        ("result_storage_type", "OMNIQ_RESULT_STORAGE_TYPE"),
        ("event_storage_type", "OMNIQ_EVENT_STORAGE_TYPE"),
    ],
)
def test_an_unknown_type_names_its_variable_and_the_known_backends(field: str, var: str) -> None:
    with pytest.raises(ConfigError) as info:
        store_urls(Settings(**{field: "mysql"}))
    assert info.value.name == var and info.value.value == "mysql"
    assert "sqlite" in info.value.accepted and "redis" in info.value.accepted


@pytest.mark.parametrize("kind", ["postgres", "redis", "nats"])
def test_a_server_type_without_url_names_the_url_variable(kind: str) -> None:
    with pytest.raises(ConfigError) as info:
        store_urls(Settings(task_queue_type=kind))
    assert info.value.name == "OMNIQ_TASK_QUEUE_URL"
    with pytest.raises(ConfigError) as info:
        store_urls(Settings(event_storage_type=kind))
    assert info.value.name == "OMNIQ_EVENT_STORAGE_URL"
    url = {"postgres": "postgresql://h/db", "redis": "redis://h", "nats": "nats://h"}[kind]
    s = Settings(task_queue_type=kind, task_queue_url=url, event_storage_type=kind)
    assert store_urls(s).events == url


def test_a_backend_class_declares_its_own_rule(custom: None) -> None:
    s = Settings(task_queue_type="rule", default_queue="q1", event_storage_type="rule")
    urls = store_urls(s)
    assert urls.tasks == "rule://q1/task_queue" and urls.events == urls.tasks
    s = Settings(task_queue_type="memory", event_storage_type="rule")
    assert store_urls(s).events == "rule://default/event_storage"
    with pytest.raises(ConfigError) as info:
        store_urls(Settings(result_storage_type="srv"))
    assert info.value.name == "OMNIQ_RESULT_STORAGE_URL"


def test_an_unknown_store_kind_is_refused() -> None:
    with pytest.raises(ConfigError) as info:
        default_url("sqlite", Settings(), "schedule_storage")
    assert info.value.name == "store"
