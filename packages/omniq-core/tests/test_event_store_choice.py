"""OmniQ and AsyncEventLogger.from_settings pick the same event store for the same
settings, for every storage type setting value: events one of them writes, the other
reads."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from omniq.config import Settings
from omniq.core import OmniQ, resolve_urls
from omniq.events import AsyncEventLogger
from omniq.models import ConfigError, EventType
from omniq.storage.testing import NOOP
from omniq.storage.testing.servers import drop_namespace, unique_url

pytestmark = pytest.mark.anyio

EMBEDDED = ["sqlite", "file", "memory"]
SERVERS = {"postgres": "postgresql", "redis": "redis", "nats": "nats"}


@pytest.fixture
def server_url(request: pytest.FixtureRequest) -> Iterator[str]:
    url = unique_url(SERVERS[request.param])
    yield url
    drop_namespace(url)


async def _one_store(settings: Settings) -> None:
    """What the facade logs the logger reads, and the other way round."""
    async with OmniQ(settings=settings) as oq:
        task = await oq.enqueue(NOOP)
    async with AsyncEventLogger.from_settings(settings) as log:
        assert log.storage is not None
        assert [e.type for e in await log.storage.query(task_id=task.id)] == [EventType.ENQUEUED]
        log.cancelled("logged-by-the-logger")
        await log.flush()
    async with OmniQ(settings=settings) as oq:
        got = await oq.get_events("logged-by-the-logger")
        assert [e.type for e in got] == [EventType.CANCELLED]


@pytest.mark.parametrize("kind", ["sqlite", "file"])
async def test_embedded_event_type_alone(kind: str, tmp_path: Path) -> None:
    await _one_store(Settings(base_dir=str(tmp_path), event_storage_type=kind))


async def test_sqlite_events_default_to_the_task_queue_database(tmp_path: Path) -> None:
    await _one_store(Settings(base_dir=str(tmp_path), event_storage_type="sqlite"))
    assert (tmp_path / "omniq.db").is_file()
    assert not (tmp_path / "events.db").exists()


@pytest.mark.parametrize("kind", ["sqlite", "file"])
async def test_embedded_event_type_of_the_task_queue(kind: str, tmp_path: Path) -> None:
    await _one_store(
        Settings(base_dir=str(tmp_path), task_queue_type=kind, event_storage_type=kind)
    )


@pytest.mark.parametrize("task_queue_type", ["sqlite", "memory"])
async def test_memory_event_type(task_queue_type: str, tmp_path: Path) -> None:
    # memory:// is one store per opened backend: both name it, neither can share it.
    s = Settings(
        base_dir=str(tmp_path), task_queue_type=task_queue_type, event_storage_type="memory"
    )
    async with AsyncEventLogger.from_settings(s) as log:
        opened = log._backend
        assert opened is not None
        assert resolve_urls(s)[2] == opened.url == "memory://"


@pytest.mark.parametrize("server_url", list(SERVERS), indirect=True)
async def test_server_event_type_of_the_task_queue(server_url: str, tmp_path: Path) -> None:
    kind = next(k for k, scheme in SERVERS.items() if server_url.startswith(scheme))
    await _one_store(
        Settings(
            base_dir=str(tmp_path),
            task_queue_type=kind,
            task_queue_url=server_url,
            event_storage_type=kind,
        )
    )


@pytest.mark.parametrize("kind", list(SERVERS))
async def test_server_event_type_without_url_is_refused_by_both(kind: str) -> None:
    s = Settings(event_storage_type=kind)
    with pytest.raises(ConfigError) as facade:
        OmniQ(settings=s)
    with pytest.raises(ConfigError) as logger:
        AsyncEventLogger.from_settings(s)
    assert facade.value.name == logger.value.name == "OMNIQ_EVENT_STORAGE_URL"
