"""The backend registry: entry points, run-time registration, and its errors."""

from __future__ import annotations

import pathlib
from collections.abc import Iterator

import pytest

from omniq.models import MissingExtraError, StorageError, UnknownBackendError
from omniq.storage import (
    BACKENDS,
    ENTRY_POINT_GROUP,
    BackendEntry,
    MemoryBackend,
    backend_class,
    known_schemes,
    open_storage,
    register_backend,
)
from omniq.storage._registry import _BackendTable


class EchoBackend(MemoryBackend):
    """A memory backend under another scheme."""


@pytest.fixture
def scratch_scheme() -> Iterator[str]:
    yield "omniq-test-echo"
    BACKENDS.pop("omniq-test-echo", None)


def test_the_builtin_backends_come_from_the_entry_point_group() -> None:
    from importlib.metadata import entry_points

    declared = {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}
    for scheme in ("memory", "file", "sqlite", "postgres", "postgresql", "redis", "rediss"):
        assert declared[scheme].dist is not None
        assert declared[scheme].dist.name == "omniq-storage"
        entry = BACKENDS[scheme]
        assert entry.target == f"{declared[scheme].module}:{declared[scheme].attr}"
        assert entry.distribution == "omniq-storage"
    assert BACKENDS["nats"].extra == "nats" and BACKENDS["memory"].extra is None
    assert backend_class("memory") is MemoryBackend
    assert "sqlite" in known_schemes() and known_schemes() == sorted(known_schemes())


def test_register_a_class_and_open_it(scratch_scheme: str) -> None:
    with pytest.raises(UnknownBackendError):
        open_storage(f"{scratch_scheme}://x")
    register_backend(scratch_scheme, EchoBackend)
    backend = open_storage(f"{scratch_scheme.upper()}://x")
    assert type(backend) is EchoBackend and backend.url == f"{scratch_scheme.upper()}://x"
    assert scratch_scheme in known_schemes()


def test_registration_wins_over_the_entry_point_and_can_be_undone() -> None:
    declared = BACKENDS["memory"]
    register_backend("memory", EchoBackend)
    try:
        assert type(open_storage("memory://")) is EchoBackend
    finally:
        del BACKENDS["memory"]  # uncovers the entry point
    assert BACKENDS["memory"] == declared
    assert type(open_storage("memory://")) is MemoryBackend
    with pytest.raises(KeyError, match="entry point"):
        del BACKENDS["memory"]


def test_a_table_reads_the_entry_points_lazily_and_keeps_registrations() -> None:
    table = _BackendTable()
    table["later"] = BackendEntry("x:Y")
    assert table["LATER"] == BackendEntry("x:Y")  # no entry point read for it
    assert table["sqlite"].target.endswith(":SQLiteBackend")  # read on first use
    table.reload()
    assert "later" in table and "sqlite" in table
    del table["later"]
    assert "later" not in table and len(table) >= 8


def test_missing_driver_names_the_extra_of_the_declaring_distribution(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch, scratch_scheme: str
) -> None:
    (tmp_path / "omniq_fake_plugin.py").write_text("import omniq_missing_driver_xyz\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    register_backend(scratch_scheme, "omniq_fake_plugin:Backend", "fast", distribution="acme-db")
    with pytest.raises(MissingExtraError) as info:
        open_storage(f"{scratch_scheme}://x")
    assert "pip install 'acme-db[fast]'" in str(info.value)
    assert "omniq_missing_driver_xyz" in str(info.value)
    assert isinstance(info.value, ImportError)  # catchable as the ImportError it is


def test_a_missing_module_or_a_non_backend_target_is_a_storage_error(
    scratch_scheme: str,
) -> None:
    register_backend(scratch_scheme, "omniq_no_such_module_xyz:B", distribution="acme-db")
    with pytest.raises(StorageError, match="pip install 'acme-db'"):
        open_storage(f"{scratch_scheme}://x")
    register_backend(scratch_scheme, "omniq.storage:open_storage")
    with pytest.raises(StorageError, match="is not a storage Backend"):
        open_storage(f"{scratch_scheme}://x")


def test_unknown_scheme_names_the_known_ones(scratch_scheme: str) -> None:
    register_backend(scratch_scheme, EchoBackend)
    with pytest.raises(UnknownBackendError) as info:
        backend_class("nosuch")
    assert f"{scratch_scheme}://" in str(info.value) and "sqlite://" in str(info.value)
