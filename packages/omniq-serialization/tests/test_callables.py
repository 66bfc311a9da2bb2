"""encode_callable / resolve_callable: import paths first, signed dill for the rest."""

from __future__ import annotations

import functools
import json
import os.path
import sys
import textwrap
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from omniq.models import InvalidTaskError, Payload
from omniq.serialization import SerializationManager
from omniq.serialization._callables import resolve_path

SECRET = "test-secret-0123456789abcdef"
PLAIN = SerializationManager()
DILL = SerializationManager(dill_enabled=True, secret=SECRET)


# pytest's importlib mode names this file's module "packages.omniq-serialization.tests...",
# which no worker could import; so the module-level helpers live in a real, validly named
# module registered in sys.modules, exactly like a user's tasks module.
MODULE = "omniq_serialization_test_tasks"
_tasks = types.ModuleType(MODULE)
exec(
    textwrap.dedent(
        """
        def module_level(x):
            return x * 2

        class Tasks:
            @staticmethod
            def static(x):
                return x + 1

            @classmethod
            def klass(cls, x):
                return f"{cls.__name__}:{x}"

            def method(self, x):
                return x - 1
        """
    ),
    _tasks.__dict__,
)
sys.modules[MODULE] = _tasks
module_level: Callable[[int], int] = _tasks.module_level
Tasks: Any = _tasks.Tasks


def defined_here(x: int) -> int:
    return x


def make_adder(n: int) -> Callable[[int], int]:
    def add(x: int) -> int:
        return x + n

    return add


@pytest.mark.parametrize(
    ("func", "path"),
    [
        (len, "builtins:len"),
        (json.dumps, "json:dumps"),
        (os.path.join, f"{os.path.join.__module__}:join"),
        (Path, f"{Path.__module__}:Path"),  # pathlib._local on Python 3.13
        (Tasks.static, f"{MODULE}:Tasks.static"),
        (Tasks.klass, f"{MODULE}:Tasks.klass"),
        (module_level, f"{MODULE}:module_level"),
    ],
)
def test_importable_callables_travel_by_path(func: Callable[..., Any], path: str) -> None:
    for manager in (PLAIN, DILL):
        assert manager.encode_callable(func) == (path, None)
        resolved = manager.resolve_callable(path)
        assert resolved is func or resolved == func


def test_resolved_classmethod_and_staticmethod_work() -> None:
    assert PLAIN.resolve_callable(f"{MODULE}:Tasks.klass")(3) == "Tasks:3"
    assert PLAIN.resolve_callable(f"{MODULE}:Tasks.static")(3) == 4


@pytest.mark.parametrize(
    ("func", "reason"),
    [
        (lambda x: x, "it is a lambda"),
        (make_adder(1), "nested function or closure"),
        (Tasks().method, "bound to an instance"),
        (functools.partial(pow, 2), "partial"),
        (defined_here, "not an importable dotted name"),
    ],
)
def test_non_importable_callables_need_dill(func: Callable[..., Any], reason: str) -> None:
    with pytest.raises(InvalidTaskError, match=reason) as info:
        PLAIN.encode_callable(func)
    assert "enable dill" in str(info.value)
    label, payload = DILL.encode_callable(func)
    assert payload is not None and payload.format == "dill"
    assert isinstance(label, str)
    assert DILL.resolve_callable(label, payload)(5) == func(5)


def test_main_functions_need_dill() -> None:
    def fake_main(x: int) -> int:
        return x

    fake_main.__module__ = "__main__"
    fake_main.__qualname__ = "fake_main"
    with pytest.raises(InvalidTaskError, match="defined in __main__"):
        PLAIN.encode_callable(fake_main)


def test_not_callable() -> None:
    with pytest.raises(InvalidTaskError, match="needs a callable"):
        PLAIN.encode_callable(42)  # type: ignore[arg-type]


@given(st.integers(-(10**6), 10**6), st.integers(-(10**6), 10**6))
def test_closures_and_lambdas_roundtrip(n: int, x: int) -> None:
    label, payload = DILL.encode_callable(make_adder(n))
    assert DILL.resolve_callable(label, payload)(x) == n + x
    label, payload = DILL.encode_callable(lambda v, n=n: v * n)
    assert DILL.resolve_callable(label, payload)(x) == x * n


def test_callable_payload_must_be_dill_and_callable() -> None:
    with pytest.raises(InvalidTaskError, match="expected 'dill'"):
        DILL.resolve_callable("x:y", Payload("msgpack", b"\xc0"))
    with pytest.raises(InvalidTaskError, match="holds a set"):
        DILL.resolve_callable("x:y", DILL.dumps({1}))


@pytest.mark.parametrize(
    "path",
    [
        "",
        "json",
        "json:",
        ":dumps",
        "json:dumps:x",
        "json.:dumps",
        "1json:dumps",
        "json:dumps.__globals__",
        f"{MODULE}:Tasks.__class__",
        "__main__:main",
        "json:du mps",
    ],
)
def test_malformed_paths_are_refused(path: str) -> None:
    with pytest.raises(InvalidTaskError):
        PLAIN.resolve_callable(path)


def test_missing_module_and_attribute() -> None:
    with pytest.raises(InvalidTaskError, match="cannot import module"):
        PLAIN.resolve_callable("omniq_no_such_module_xyz:f")
    with pytest.raises(InvalidTaskError, match="has no attribute"):
        PLAIN.resolve_callable("json:no_such_function")
    with pytest.raises(InvalidTaskError, match="not a callable"):
        PLAIN.resolve_callable("os.path:sep")


@pytest.fixture
def canary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, Path]]:
    """An importable module that leaves a file behind when it is imported."""
    name = f"omniq_canary_{tmp_path.name.replace('-', '_')}"
    marker = tmp_path / "imported"
    (tmp_path / f"{name}.py").write_text(
        f"import pathlib\npathlib.Path({str(marker)!r}).write_text('yes')\n"
        "def job(x):\n    return x + 100\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name, marker
    sys.modules.pop(name, None)


def test_allow_list_refuses_without_importing(canary: tuple[str, Path]) -> None:
    name, marker = canary
    for allowed in (["myapp"], ["omniq_canary"], [f"{name}x"], [f"{name}.sub"], "myapp"):
        with pytest.raises(InvalidTaskError, match="outside the allowed modules"):
            PLAIN.resolve_callable(f"{name}:job", allowed_modules=allowed)
        assert name not in sys.modules
        assert not marker.exists()
    job = PLAIN.resolve_callable(f"{name}:job", allowed_modules=["myapp", name])
    assert job(1) == 101 and marker.exists() and name in sys.modules


def test_allow_list_accepts_submodules() -> None:
    assert PLAIN.resolve_callable("os.path:join", allowed_modules=["os"]) is os.path.join
    assert PLAIN.resolve_callable("json:dumps", allowed_modules=("json.",)) is json.dumps
    with pytest.raises(InvalidTaskError, match="outside"):
        PLAIN.resolve_callable("json:dumps", allowed_modules=[])


def test_resolution_is_cached() -> None:
    PLAIN.resolve_callable("json:loads")
    before = resolve_path.cache_info().hits
    for _ in range(5):
        assert PLAIN.resolve_callable("json:loads") is json.loads
    assert resolve_path.cache_info().hits >= before + 5
