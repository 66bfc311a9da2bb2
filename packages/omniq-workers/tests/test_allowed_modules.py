"""Which functions a pool runs: the allow-list is checked before any import, a refused
task ends as a non-retryable error, children obey the same list, ``__main__`` functions
never reach a child, and a missing worker extra stops the pool before it claims."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from omniq_workers_testkit import MemorySink, MemorySource, make_task, omniq_children, value_of

from omniq.config import Settings
from omniq.models import InvalidTaskError, MissingExtraError, Payload, TaskStatus, WorkerType
from omniq.serialization import SerializationManager
from omniq.workers import AsyncWorkerPool, ProcessWorker, RemoteTaskError

pytestmark = pytest.mark.anyio


@pytest.fixture(autouse=True)
def no_children_left() -> Iterator[None]:
    yield
    assert omniq_children() == []


@pytest.fixture
def canary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, Path]]:
    """An importable module whose import writes a marker file."""
    name = f"omniq_canary_{tmp_path.name.replace('-', '_')}"
    marker = tmp_path / "imported"
    (tmp_path / f"{name}.py").write_text(
        f"import pathlib\npathlib.Path({str(marker)!r}).write_text('yes')\n"
        "def job(x):\n    return x + 100\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name, marker
    sys.modules.pop(name, None)


async def burst(tasks: list[Any], **opts: Any) -> tuple[MemorySource, MemorySink]:
    src, sink = MemorySource(tasks), MemorySink()
    opts.setdefault("settings", Settings())
    opts.setdefault("default_timeout", 0)
    await AsyncWorkerPool(src, sink, **opts).run(burst=True)
    return src, sink


def assert_refused(sink: MemorySink, task_id: str, text: str = "outside the allowed") -> None:
    o = sink.by_id()[task_id]
    assert o.status is TaskStatus.ERROR and o.error is not None, o
    assert o.error.type.endswith("InvalidTaskError"), o.error
    assert text in o.error.message, o.error.message
    assert o.retryable is False
    assert o.started_at is None  # it never ran


@pytest.mark.parametrize("wt", [None, "thread", "process"])
async def test_default_list_refuses_the_standard_library_commands(
    wt: str | None, tmp_path: Path
) -> None:
    marker = tmp_path / "pwned"
    forged = [
        make_task("os:system", f"touch {marker}", worker=wt),
        make_task("subprocess:getoutput", f"touch {marker}", worker=wt),
        make_task("builtins:eval", f"open({str(marker)!r}, 'w')", worker=wt),
        make_task("importlib:import_module", "this", worker=wt),
    ]
    fine = [make_task("add", 2, 3, worker=wt), make_task("operator:mul", 6, 7, worker=wt)]
    _src, sink = await burst(forged + fine)
    for t in forged:
        assert_refused(sink, t.id, "guarded")
    assert [value_of(sink.by_id()[t.id]) for t in fine] == [5, 42]
    assert not marker.exists()
    assert "this" not in sys.modules  # import this prints the Zen: never imported


@pytest.mark.parametrize("wt", [None, "thread", "process"])
async def test_module_outside_the_list_is_never_imported(
    wt: str | None, canary: tuple[str, Path]
) -> None:
    name, marker = canary
    refused = make_task(f"{name}:job", 1, worker=wt)
    allowed = make_task("add", 1, 1, worker=wt)
    _src, sink = await burst([refused, allowed], allowed_modules="omniq_workers_testkit, myapp.*")
    assert_refused(sink, refused.id)
    assert sink.by_id()[allowed.id].ok
    assert name not in sys.modules and not marker.exists()


async def test_settings_list_applies_when_no_keyword(canary: tuple[str, Path]) -> None:
    name, marker = canary
    tasks = [make_task(f"{name}:job", 1), make_task("add", 1, 1)]
    _src, sink = await burst(tasks, settings=Settings(allowed_modules="omniq_workers_testkit"))
    assert_refused(sink, tasks[0].id)
    assert sink.by_id()[tasks[1].id].ok and not marker.exists()
    # ...and the keyword overrides the setting.
    _src, sink = await burst(
        [make_task(f"{name}:job", 1, worker="process")],
        settings=Settings(allowed_modules="omniq_workers_testkit"),
        allowed_modules=[name],
    )
    assert [value_of(o) for o in sink.outcomes] == [101]


async def test_a_guarded_module_runs_when_named() -> None:
    tasks = [make_task("os.path:join", "a", "b"), make_task("os.path:join", "c", "d")]
    _src, sink = await burst(tasks[:1], allowed_modules=["*", "os"])
    assert value_of(sink.outcomes[0]) == "a/b"
    _src, sink = await burst(tasks[1:], allowed_modules=["*", "os.pathx"])
    assert_refused(sink, tasks[1].id)


async def test_child_enforces_the_list_too(canary: tuple[str, Path]) -> None:
    """A ProcessWorker used directly: the child refuses before importing."""
    name, marker = canary
    async with ProcessWorker(1, allowed_modules=["myapp"]) as w:
        with pytest.raises(RemoteTaskError, match="outside the allowed modules") as info:
            await w.call(f"{name}:job", None, None)
        assert info.value.info.type.endswith("InvalidTaskError")
    assert not marker.exists()


async def test_main_functions_never_reach_a_child() -> None:
    dill = SerializationManager(dill_enabled=True, secret="s" * 32)
    payload = Payload("dill", b"never unpickled")
    task = make_task("add", worker="process")
    forged = msgspec.structs.replace(task, func="__main__:<lambda>", func_payload=payload)
    _src, sink = await burst([forged], serializer=dill)
    assert_refused(sink, forged.id, "move the function into an importable module")
    async with ProcessWorker(1) as w:
        with pytest.raises(InvalidTaskError, match="__main__"):
            await w.call("__main__:f", None, None, payload)


async def test_missing_gevent_extra_stops_the_pool_before_any_claim(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "gevent", None)
    monkeypatch.setitem(sys.modules, "gevent.pool", None)
    src, sink = MemorySource([make_task("add", 1, 1) for _ in range(3)]), MemorySink()
    with pytest.raises(MissingExtraError, match=r"omniq-workers\[gevent\]"):
        AsyncWorkerPool(src, sink, settings=Settings(), default_worker="gevent")
    with pytest.raises(MissingExtraError, match=r"omniq-workers\[gevent\]"):
        AsyncWorkerPool(src, sink, settings=Settings(default_worker="gevent"))
    assert src.claimed == [] and len(src.pending) == 3 and sink.outcomes == []
    # A pool of another default type still runs; a gevent-hinted task fails alone.
    hinted = make_task("add", 1, 1, worker=WorkerType.GEVENT)
    src.add([hinted])
    await AsyncWorkerPool(src, sink, settings=Settings()).run(burst=True)
    by = sink.by_id()
    assert by[hinted.id].error is not None
    assert "omniq-workers[gevent]" in by[hinted.id].error.message
    assert sum(o.ok for o in sink.outcomes) == 3
