"""The umbrella re-exports lazily and leaves the portions importable on their own."""

from __future__ import annotations

import subprocess
import sys


def _run(code: str) -> str:
    return subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout.strip()


def test_import_is_lazy() -> None:
    out = _run("import sys, omniq; print('omniq.models' in sys.modules)")
    assert out == "False"


def test_reexports_resolve_to_the_portion_objects() -> None:
    import omniq
    import omniq.models

    assert omniq.Task is omniq.models.Task
    assert "Task" in dir(omniq)


def test_unknown_attribute_is_an_attribute_error() -> None:
    import omniq

    try:
        omniq.NoSuchThing  # noqa: B018
    except AttributeError as exc:
        assert "NoSuchThing" in str(exc)
    else:
        raise AssertionError("expected AttributeError")
