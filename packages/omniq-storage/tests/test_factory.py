"""open_storage: scheme selection, lazy imports, helpful errors."""

from __future__ import annotations

import pathlib

import pytest

from omniq.models import MissingExtraError, UnknownBackendError
from omniq.storage import (
    BACKENDS,
    FileBackend,
    MemoryBackend,
    SQLiteBackend,
    open_storage,
    register_backend,
)


def test_embedded_schemes(tmp_path: pathlib.Path) -> None:
    assert isinstance(open_storage("memory://"), MemoryBackend)
    assert isinstance(open_storage(f"sqlite:///{tmp_path}/x.db"), SQLiteBackend)
    assert isinstance(open_storage("sqlite://:memory:"), SQLiteBackend)
    local = open_storage(f"file://{tmp_path}/store")
    assert isinstance(local, FileBackend) and local.local
    for url in ("file+memory://root", "fsspec+memory://root"):
        memfs = open_storage(url)
        assert isinstance(memfs, FileBackend) and not memfs.local


def test_unknown_scheme_lists_known_ones() -> None:
    with pytest.raises(UnknownBackendError) as info:
        open_storage("nosuch://x")
    message = str(info.value)
    for scheme in ("memory://", "sqlite://", "file://", "postgresql://", "redis://", "nats://"):
        assert scheme in message
    with pytest.raises(UnknownBackendError):
        open_storage("no-scheme-here")


def test_missing_driver_names_the_extra(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "omniq_fake_backend.py").write_text("import omniq_missing_driver_xyz\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    register_backend("fakedb", "omniq_fake_backend:Backend", "fake")
    try:
        with pytest.raises(MissingExtraError) as info:
            open_storage("fakedb://x")
        assert "pip install 'omniq-storage[fake]'" in str(info.value)
    finally:
        BACKENDS.pop("fakedb")


def test_server_schemes_registered() -> None:
    assert BACKENDS["postgresql"].extra == "postgres" and BACKENDS["postgres"].extra == "postgres"
    assert BACKENDS["redis"].extra == "redis" and BACKENDS["rediss"].extra == "redis"
    assert BACKENDS["nats"].extra == "nats"
