"""ConfigProvider: precedence, atomic validated updates, subscribers, process default."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from omniq.config import ConfigProvider, Settings, get_provider, get_settings, set_provider
from omniq.models import ConfigError
from omniq.models import settings as constants


def test_precedence_constants_env_overrides() -> None:
    env = {"OMNIQ_TASK_TTL": "60", "OMNIQ_RETRY_ATTEMPTS": "5"}
    p = ConfigProvider(env=env, task_ttl=10)
    s = p.settings
    assert s.task_ttl == 10.0  # explicit beats environment
    assert s.retry_attempts == 5  # environment beats constant
    assert s.result_ttl == constants.RESULT_TTL  # constant when nothing else
    assert ConfigProvider(env={}).settings == Settings()


def test_override_fixes_nothing_in_bad_env() -> None:
    with pytest.raises(ConfigError, match="OMNIQ_MAX_WORKERS"):
        ConfigProvider(env={"OMNIQ_MAX_WORKERS": "many"})


def test_bad_and_unknown_overrides() -> None:
    with pytest.raises(ConfigError) as info:
        ConfigProvider(env={}, lease_seconds=0)
    assert info.value.name == "lease_seconds"
    with pytest.raises(ConfigError, match="did you mean max_workers"):
        ConfigProvider(env={}, max_worker=3)


def test_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMNIQ_DEFAULT_QUEUE", "mail")
    assert ConfigProvider.from_env().settings.default_queue == "mail"
    assert ConfigProvider.from_env({"OMNIQ_DEFAULT_QUEUE": "x"}).settings.default_queue == "x"


def test_update_validates_and_notifies() -> None:
    p = ConfigProvider(env={})
    seen: list[tuple[Settings, Settings]] = []
    unsubscribe = p.subscribe(lambda old, new: seen.append((old, new)))
    before = p.settings
    new = p.update(max_workers=20, log_level="debug")
    assert p.settings is new and (new.max_workers, new.log_level) == (20, "DEBUG")
    assert seen == [(before, new)]

    with pytest.raises(ConfigError):
        p.update(max_workers=30, task_ttl=-1)  # all or nothing
    assert p.settings is new and len(seen) == 1

    p.update(max_workers=20)  # no change, no notification
    assert len(seen) == 1
    unsubscribe()
    p.update(max_workers=21)
    assert len(seen) == 1


def test_failing_listener_does_not_block_others(caplog: pytest.LogCaptureFixture) -> None:
    p = ConfigProvider(env={})
    seen: list[int] = []

    def bad(old: Settings, new: Settings) -> None:
        raise RuntimeError("boom")

    p.subscribe(bad)
    p.subscribe(lambda old, new: seen.append(new.max_workers))
    p.update(max_workers=3)
    assert seen == [3]
    assert "listener" in caplog.text


def test_reload_rereads_env_keeping_overrides() -> None:
    env = {"OMNIQ_TASK_TTL": "60"}
    p = ConfigProvider(env=env, retry_attempts=1)
    p.update(max_workers=2)
    env["OMNIQ_TASK_TTL"] = "90"
    env["OMNIQ_RETRY_ATTEMPTS"] = "7"
    s = p.reload()
    assert (s.task_ttl, s.retry_attempts, s.max_workers) == (90.0, 1, 2)


def test_concurrent_updates_are_atomic() -> None:
    p = ConfigProvider(env={})
    seen: list[tuple[int, int]] = []
    p.subscribe(lambda old, new: seen.append((new.thread_workers, new.process_workers)))

    def worker(n: int) -> None:
        for i in range(1, 50):
            p.update(thread_workers=n * 100 + i, process_workers=n * 100 + i)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(1, 5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    s = p.settings
    assert s.thread_workers == s.process_workers
    assert all(a == b for a, b in seen)
    assert seen[-1] == (s.thread_workers, s.process_workers)


@pytest.fixture
def default_provider() -> Iterator[None]:
    set_provider(None)
    yield
    set_provider(None)


@pytest.mark.usefixtures("default_provider")
def test_process_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMNIQ_MAX_WORKERS", "4")
    assert get_settings().max_workers == 4
    assert get_provider() is get_provider()
    custom = ConfigProvider(env={}, max_workers=9)
    set_provider(custom)
    assert get_settings().max_workers == 9
