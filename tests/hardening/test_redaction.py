"""A store URL's password never reaches an exception, its repr, a log record or the
banner: each server backend is opened with a distinctive password against a closed port."""

from __future__ import annotations

import logging
import socket

import pytest

from omniq.core import OmniQ
from omniq.models import BackendUnavailableError, OmniQError, UnknownBackendError
from omniq.storage import open_storage

pytestmark = pytest.mark.anyio
SECRET = "Hunter2-Zq9xW"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again once the socket is


def _urls(port: int) -> dict[str, str]:
    return {
        "postgres": f"postgresql://omniq:{SECRET}@127.0.0.1:{port}/app?schema=s",
        "postgres-dsn-param": f"postgresql://omniq@127.0.0.1:{port}/app?password={SECRET}",
        "redis": f"redis://:{SECRET}@127.0.0.1:{port}/0",
        "redis-user": f"redis://default:{SECRET}@127.0.0.1:{port}/0?prefix=p:",
        "nats": f"nats://omniq:{SECRET}@127.0.0.1:{port}",
        "nats-token": f"nats://{SECRET}@127.0.0.1:{port}",
    }


def _shown(exc: BaseException) -> str:
    """Everything an exception chain shows: messages and reprs of each link."""
    out = []
    e: BaseException | None = exc
    while e is not None:
        out += [str(e), repr(e)]
        e = e.__cause__ or e.__context__
    return "\n".join(out)


@pytest.mark.parametrize("case", list(_urls(1)))
async def test_unreachable_server_error_and_logs_hide_the_password(
    case: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    url = _urls(_closed_port())[case]
    options = {"connect_deadline": 1.0} if case.startswith("nats") else {}
    backend = open_storage(url, **options)
    with pytest.raises(BackendUnavailableError) as info:
        async with backend:
            pass
    shown = _shown(info.value)
    assert SECRET not in shown, shown
    assert "127.0.0.1" in str(info.value)  # still says where
    assert SECRET not in caplog.text
    for record in caplog.records:
        assert SECRET not in record.getMessage()
        if record.exc_info:
            assert SECRET not in _shown(record.exc_info[1])  # type: ignore[arg-type]
    assert SECRET not in repr(backend)


def test_unknown_scheme_error_hides_the_password() -> None:
    with pytest.raises(UnknownBackendError) as info:
        open_storage(f"nosuch://u:{SECRET}@h/0")
    assert SECRET not in str(info.value) and "u:***@h" in str(info.value)


def test_omniq_repr_hides_the_password() -> None:
    oq = OmniQ(f"redis://:{SECRET}@127.0.0.1:6379/0")
    assert SECRET not in repr(oq) and ":***@127.0.0.1:6379" in repr(oq)


async def test_facade_error_for_a_store_without_a_task_queue_hides_the_password(
    tmp_path: object,
) -> None:
    from omniq.storage import Backend

    class NoQueue(Backend):
        url = f"postgresql://u:{SECRET}@db/app"
        tasks = None
        results = None
        events = None
        schedules = None

        async def connect(self) -> None:
            return None

        async def close(self) -> None:
            return None

    oq = OmniQ(NoQueue())
    with pytest.raises(OmniQError) as info:
        await oq.get_task("t1")
    assert SECRET not in str(info.value) and "u:***@db" in str(info.value)
