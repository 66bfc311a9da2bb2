"""Task ids never escape the file store: results are kept in one file per id inside
``results/`` whatever the id says (``..``, absolute paths, backslashes, NUL, very long
ids), on the local filesystem and on fsspec's memory filesystem alike."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import fsspec
import hardening_tasks as ht
import msgspec
import pytest

from omniq.core import OmniQ
from omniq.models import InvalidTaskError, TaskResult, TaskStatus, new_id
from omniq.storage import Backend
from omniq.storage._backends.file._stores import Files, file_name

pytestmark = [pytest.mark.anyio, pytest.mark.engines("file-local", "file-memfs")]

HOSTILE = [
    "../victim.txt",
    "../../victim.txt",
    "results/../../victim.txt",
    "..",
    ".",
    "",
    "/",
    "/etc/passwd",
    "../../../../etc/passwd",
    "..\\..\\victim.txt",
    "C:\\victim.txt",
    "a\x00b",
    "x/../../victim.txt",
    "nested/dir/id",
    "x" * 5000,
    "name.tmp",
    "_h" + "0" * 64,
]


def _fs_and_root(store: Any) -> tuple[Any, str]:
    return store._fs, store.root


def _all_files(fs: Any, top: str) -> set[str]:
    return {p for p in fs.find(top)} if fs.exists(top) else set()


async def test_hostile_ids_stay_inside_results(
    backend_id: str, store_and_url: tuple[Backend, str], tmp_path: Path
) -> None:
    store, _ = store_and_url
    assert store.results is not None
    fs, root = _fs_and_root(store)
    outside_top = str(tmp_path) if backend_id == "file-local" else "/"
    before = _all_files(fs, outside_top)
    results = [
        TaskResult(task_id=i, status=TaskStatus.SUCCESS, value=n) for n, i in enumerate(HOSTILE)
    ]
    await store.results.put(results)
    got = await store.results.get(HOSTILE)
    assert [r.value if r else None for r in got] == list(range(len(HOSTILE)))
    created = _all_files(fs, outside_top) - before
    results_dir = fs._strip_protocol(f"{root}/results")
    assert created, "the results were written somewhere"
    for p in created:
        assert fs._strip_protocol(p).startswith(results_dir + "/"), p
    assert len(created) == len(set(HOSTILE))
    assert await store.results.delete(HOSTILE) == len(HOSTILE)
    assert _all_files(fs, outside_top) - before == set()


async def test_a_file_outside_the_store_is_never_read_written_or_deleted(
    backend_id: str, store_and_url: tuple[Backend, str]
) -> None:
    store, _ = store_and_url
    assert store.results is not None
    fs, root = _fs_and_root(store)
    victim = f"{root.rsplit('/', 1)[0]}/victim.txt"  # beside the store's root
    good = TaskResult(task_id="x", status=TaskStatus.SUCCESS, value="planted")
    from omniq.storage._codec import encode

    fs.pipe_file(victim, encode(good))  # a valid result: it would decode if it were read
    try:
        for tid in ("../victim.txt", "../../victim.txt", victim, "results/../../victim.txt"):
            assert await store.results.get_one(tid) is None
            await store.results.put([TaskResult(task_id=tid, status=TaskStatus.ERROR)])
            assert await store.results.delete([tid]) == 1
            assert fs.cat_file(victim) == encode(good)
    finally:
        fs.rm_file(victim)


async def test_a_worker_and_purge_dead_letters_keep_to_the_store(
    backend_id: str, store_and_url: tuple[Backend, str]
) -> None:
    """Forged tasks written straight into the store (as anyone with write access to it
    could; ``build`` itself refuses such ids) never make a worker or a purge touch a
    file outside the store."""
    store, url = store_and_url
    assert store.tasks is not None and store.results is not None
    fs, root = _fs_and_root(store)
    victim = f"{root.rsplit('/', 1)[0]}/victim.txt"
    fs.pipe_file(victim, b"precious")
    try:
        async with OmniQ(url, lease_seconds=10.0) as oq:
            ok = msgspec.structs.replace(oq.build(ht.double, (21,)), id="../../victim.txt")
            bad = msgspec.structs.replace(oq.build(ht.boom, max_retries=0), id="../victim.txt")
        await store.tasks.enqueue([ok, bad])
        await store.close()  # the worker's store replays what this one wrote
        async with OmniQ(url, lease_seconds=10.0) as oq:
            with anyio.fail_after(30):
                await oq.run_worker(burst=True)
            assert fs.cat_file(victim) == b"precious"
            letters = await oq.dead_letters()
            assert [d.task.id for d in letters] == ["../victim.txt"]
            assert "boom" in letters[0].error
            assert await oq.purge_dead_letters() == 1
            assert fs.cat_file(victim) == b"precious"
        await store.connect()
        r, passwd = await store.results.get(["../../victim.txt", "../../../../etc/passwd"])
        assert r is not None and r.status is TaskStatus.SUCCESS
        assert passwd is None
    finally:
        fs.rm_file(victim)


def test_file_names_keep_plain_ids_and_hash_the_rest(backend_id: str) -> None:
    tid = new_id()
    assert file_name(tid) == tid  # stores written before keep their file names
    for hostile in HOSTILE:
        name = file_name(hostile)
        assert "/" not in name and "\\" not in name and "\x00" not in name
        assert name not in (".", "..", "") and len(name) <= 128
    assert len({file_name(h) for h in HOSTILE}) == len(HOSTILE)


def test_child_refuses_a_path_outside_the_root(backend_id: str, tmp_path: Path) -> None:
    local = backend_id == "file-local"
    fs = fsspec.filesystem("file" if local else "memory")
    root = str(tmp_path / "store") if local else "/omniq-paths-root"
    files = Files(fs, root, local)
    assert files.child(f"{root}/results", "abc") == f"{root}/results/abc"
    for folder in (f"{root}/results/..", f"{root}/../elsewhere", "/elsewhere", root):
        with pytest.raises(InvalidTaskError, match="abc"):
            files.child(folder, "abc")
