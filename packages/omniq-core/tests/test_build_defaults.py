"""``build_task`` with no option but ``queue`` takes a short path: it must build the
same Task as the full path (forced here by an explicit default, ``metadata={}``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import msgspec
import pytest

from omniq.config import Settings
from omniq.models import InvalidTaskError, ManualClock, set_clock
from omniq.queue import build_task
from omniq.serialization import SerializationManager


@pytest.fixture(autouse=True)
def _clock() -> Iterator[None]:
    old = set_clock(ManualClock(1_800_000_000.5))
    yield
    set_clock(old)


SETTINGS = [
    Settings(),
    Settings(task_ttl=0, task_timeout=0, retry_attempts=0),
    Settings(task_ttl=12.5, task_timeout=3, retry_attempts=7, retry_delay=0.25,
             retry_max_delay=9, default_queue="dq"),
]  # fmt: skip


@pytest.mark.parametrize("settings", SETTINGS)
@pytest.mark.parametrize(
    ("func", "args", "kwargs", "queue"),
    [
        ("m:f", (), None, None),
        ("pkg.mod:Cls.meth", [1, "two"], {"k": 3.5}, "q-1"),
        (len, (b"x",), {}, "other"),
    ],
)
def test_short_path_builds_the_full_paths_task(
    settings: Settings, func: Any, args: Any, kwargs: Any, queue: str | None
) -> None:
    ser = SerializationManager.from_settings(settings)
    short = build_task(ser, settings, func, args, kwargs, queue=queue)
    full = build_task(ser, settings, func, args, kwargs, queue=queue, metadata={})
    assert msgspec.structs.asdict(short) | {"id": full.id} == msgspec.structs.asdict(full)


@pytest.mark.parametrize(
    ("args", "kwargs", "queue"),
    [("ab", None, None), ((), [1], None), ((), {1: 2}, None), ((), None, "bad queue!")],
)
def test_short_path_still_checks_the_call_and_the_queue(
    args: Any, kwargs: Any, queue: str | None
) -> None:
    ser = SerializationManager.from_settings(Settings())
    with pytest.raises(InvalidTaskError):
        build_task(ser, Settings(), "m:f", args, kwargs, queue=queue)
