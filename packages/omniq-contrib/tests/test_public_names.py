"""Every public name of omniq.contrib's modules shows its public module."""

from __future__ import annotations

from typing import Any

import pytest

from omniq.models.lowlevel import exported, publication_problem

CLASSES_AND_FUNCTIONS = exported("omniq.contrib.fastapi", "omniq.contrib.django")


@pytest.mark.parametrize(
    ("module", "name", "obj"),
    CLASSES_AND_FUNCTIONS,
    ids=[f"{m}.{n}" for m, n, _ in CLASSES_AND_FUNCTIONS],
)
def test_exported_names_show_a_public_module(module: str, name: str, obj: Any) -> None:
    assert publication_problem(module, obj) is None
