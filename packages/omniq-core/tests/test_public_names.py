"""Every public name of omniq.queue, omniq.core shows its public module."""

from __future__ import annotations

import importlib
import inspect
import pickle
from typing import Any

import pytest

PUBLIC = [
    (module, name, getattr(importlib.import_module(module), name))
    for module in (
        "omniq.queue",
        "omniq.core",
    )
    for name in importlib.import_module(module).__all__
]
CLASSES_AND_FUNCTIONS = [
    (m, n, o) for m, n, o in PUBLIC if inspect.isclass(o) or inspect.isfunction(o)
]


@pytest.mark.parametrize(
    ("module", "name", "obj"),
    CLASSES_AND_FUNCTIONS,
    ids=[f"{m}.{n}" for m, n, _ in CLASSES_AND_FUNCTIONS],
)
def test_exported_names_show_a_public_module(module: str, name: str, obj: Any) -> None:
    # Defined here: the portion's own name. Re-exported from a lower portion: that one.
    owner = obj.__module__
    assert owner == module or (owner.startswith("omniq.") and "._" not in owner), owner
    assert getattr(importlib.import_module(owner), obj.__qualname__) is obj
    if inspect.isclass(obj):
        assert pickle.loads(pickle.dumps(obj)) is obj
