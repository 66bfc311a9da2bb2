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


def test_version_comes_from_the_installed_metadata() -> None:
    from importlib.metadata import version

    import omniq

    assert omniq.__version__ == version("omniq")


def test_every_public_name_resolves_and_shows_its_portion() -> None:
    import importlib

    import omniq

    for name in omniq.__all__:
        obj = getattr(omniq, name)
        if name == "__version__":
            continue
        owner = getattr(obj, "__module__", "")
        assert owner.startswith("omniq.") and "._" not in owner, (name, owner)
        assert getattr(importlib.import_module(owner), name) is obj


def test_console_script_and_python_m_run_the_core_cli() -> None:
    from importlib.metadata import entry_points, version
    from pathlib import Path

    (script,) = [e for e in entry_points(group="console_scripts") if e.name == "omniq"]
    assert script.value == "omniq.core._entry:main"
    names = ["omniq", "omniq-config", "omniq-core", "omniq-events", "omniq-models"]
    names += ["omniq-serialization", "omniq-storage", "omniq-workers"]
    for argv in ([str(Path(sys.executable).parent / "omniq")], [sys.executable, "-m", "omniq"]):
        out = subprocess.run([*argv, "--version"], check=True, capture_output=True, text=True)
        lines = out.stdout.strip().splitlines()
        for name in names:
            assert f"{name} {version(name)}" in lines, (name, lines)
        assert lines[-1].startswith(f"Python {sys.version.split()[0]} ")


def test_the_full_stack_is_installed() -> None:
    """The umbrella alone brings every backend's driver and every worker type."""
    import importlib

    for module in ("asyncpg", "redis", "hiredis", "nats", "gevent", "uvloop"):
        importlib.import_module(module)
    from omniq.storage import backend_class

    for scheme in ("postgresql", "redis", "nats", "sqlite", "file", "memory"):
        backend_class(scheme)
