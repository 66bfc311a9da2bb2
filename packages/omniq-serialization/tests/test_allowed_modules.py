"""The module allow-list: ``*`` and the guarded standard library, named entries, and
dill-sent callables checked by their label before unpickling and by origin after."""

from __future__ import annotations

import functools
import json
import math
import operator
import os.path
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from omniq.models import InvalidTaskError, Payload
from omniq.serialization import SerializationManager
from omniq.serialization._callables import admits, is_guarded

SECRET = "test-secret-0123456789abcdef"
PLAIN = SerializationManager()
DILL = SerializationManager(dill_enabled=True, secret=SECRET)


@pytest.fixture
def canary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, Path]]:
    name = f"omniq_allow_canary_{tmp_path.name.replace('-', '_')}"
    marker = tmp_path / "imported"
    (tmp_path / f"{name}.py").write_text(
        f"import pathlib\npathlib.Path({str(marker)!r}).write_text('yes')\n"
        "def job(x):\n    return x + 100\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name, marker
    sys.modules.pop(name, None)


@pytest.mark.parametrize(
    "module",
    ["os", "os.path", "posix", "subprocess", "builtins", "importlib", "logging.config",
     "runpy", "ctypes", "pickle", "shutil", "timeit", "_posixsubprocess", "dill", "dill._dill"],
)  # fmt: skip
def test_guarded_modules_need_a_name(module: str) -> None:
    assert is_guarded(module)
    assert not admits(module, ["*"])
    assert admits(module, ["*", module])
    assert admits(module, [module.partition(".")[0] + ".*"])


@pytest.mark.parametrize("module", ["math", "operator", "statistics", "myapp", "myapp.tasks"])
def test_star_admits_pure_and_third_party_modules(module: str) -> None:
    assert not is_guarded(module)
    assert admits(module, ["*"])


def test_star_resolves_but_refuses_before_import(canary: tuple[str, Path]) -> None:
    name, marker = canary
    assert PLAIN.resolve_callable("operator:add", allowed_modules=["*"]) is operator.add
    assert PLAIN.resolve_callable("math:sqrt", allowed_modules="*") is math.sqrt
    for path in ("os:system", "subprocess:getoutput", "builtins:eval", "importlib:import_module"):
        with pytest.raises(InvalidTaskError, match="guarded"):
            PLAIN.resolve_callable(path, allowed_modules=["*"])
    with pytest.raises(InvalidTaskError, match="outside the allowed modules"):
        PLAIN.resolve_callable(f"{name}:job", allowed_modules="myapp, other.*")
    assert name not in sys.modules and not marker.exists()
    assert PLAIN.resolve_callable(f"{name}:job", allowed_modules=["*"])(1) == 101
    assert marker.exists()


def test_check_callable_imports_nothing(canary: tuple[str, Path]) -> None:
    name, marker = canary
    PLAIN.check_callable(f"{name}:job", allowed_modules=["*"])
    PLAIN.check_callable(f"{name}:job")  # no list: only the path is checked
    with pytest.raises(InvalidTaskError, match="__main__"):
        PLAIN.check_callable("__main__:job", allowed_modules=["*"])
    assert name not in sys.modules and not marker.exists()


def test_dill_label_is_checked_before_unpickling() -> None:
    # Not even a valid dill frame: a label refusal must come before any decoding.
    junk = Payload("dill", b"not a frame")
    for label in ("os:system", "subprocess:<lambda>", "myapp.tasks:outer.<locals>.f"):
        with pytest.raises(InvalidTaskError, match="outside the allowed modules"):
            DILL.resolve_callable(label, junk, allowed_modules=["other"])
    with pytest.raises(InvalidTaskError, match="guarded"):
        DILL.resolve_callable("os:system", junk, allowed_modules=["*"])


def test_dill_origin_is_checked_after_unpickling() -> None:
    _, payload = DILL.encode_callable(functools.partial(os.path.join, "a"))
    assert payload is not None
    # The label claims an allowed module; the loaded partial comes from os.path (posixpath).
    with pytest.raises(InvalidTaskError, match="outside the allowed modules"):
        DILL.resolve_callable("myapp:x", payload, allowed_modules=["myapp"])
    assert DILL.resolve_callable("myapp:x", payload, allowed_modules=["myapp", "posixpath"])(
        "b"
    ) == os.path.join("a", "b")


def test_dill_main_functions_pass_the_list() -> None:
    """A function of the script (``__main__``) has no module to list; dill carries it."""
    ns: dict[str, object] = {"__name__": "__main__"}
    exec("def f(x):\n    return x * 3\n", ns)
    label, payload = DILL.encode_callable(ns["f"])  # type: ignore[arg-type]
    assert label == "__main__:f" and payload is not None
    assert DILL.resolve_callable(label, payload, allowed_modules=["myapp"])(2) == 6


def test_no_list_means_no_check() -> None:
    assert PLAIN.resolve_callable("json:dumps") is json.dumps
    assert PLAIN.resolve_callable("json:dumps", allowed_modules=None) is json.dumps
