"""The worker registry: register, refresh, expiry, deregister, sharing between
connections."""

from __future__ import annotations

import time

import msgspec
import pytest

from omniq.models import WorkerInfo, WorkerType, new_id, now
from omniq.storage import Backend, WorkerRegistry, open_storage
from omniq.storage.testing.helpers import poll_until


def worker_info(*, ttl: float = 30.0, **kw: object) -> WorkerInfo:
    """A registry entry seen now, counting for ``ttl`` seconds."""
    t = now()
    kw.setdefault("id", f"host-1:{new_id()}")
    kw.setdefault("hostname", "host-1")
    kw.setdefault("pid", 4242)
    kw.setdefault("queues", ("default", "emails"))
    kw.setdefault("worker_type", WorkerType.ASYNC)
    kw.setdefault("concurrency", 8)
    kw.setdefault("version", "0.0.0-test")
    kw.setdefault("started_at", t)
    kw.setdefault("last_seen", t)
    kw.setdefault("expires_at", t + ttl)
    return WorkerInfo(**kw)  # type: ignore[arg-type]


def reg(store: Backend) -> WorkerRegistry:
    assert store.workers is not None, "this backend keeps no worker registry"
    return store.workers


def _ids(workers: list[WorkerInfo]) -> list[str]:
    return [w.id for w in workers]


class TestWorkerRegistry:
    """The worker registry: register, refresh, expiry, deregister, sharing."""

    pytestmark = pytest.mark.anyio

    async def test_register_then_list_round_trips_every_field(self, store: Backend) -> None:
        r = reg(store)
        a = worker_info(id="a-worker", running=("t1", "t2"))
        b = worker_info(id="b-worker", worker_type=WorkerType.THREAD, queues=("q",))
        await r.register([b, a])
        assert await r.list() == [a, b]  # ordered by id, every field kept

    async def test_refresh_replaces_the_entry(self, store: Backend) -> None:
        r = reg(store)
        first = worker_info()
        await r.register([first])
        later = msgspec.structs.replace(
            first, last_seen=first.last_seen + 1, expires_at=first.expires_at + 1, running=("x",)
        )
        await r.register([later])
        assert await r.list() == [later]

    async def test_an_entry_stops_counting_at_its_expiry(self, store: Backend) -> None:
        r = reg(store)
        keep = worker_info(ttl=60)
        lapse = worker_info(ttl=0.4)
        registered = time.monotonic()
        await r.register([keep, lapse])
        assert sorted(_ids(await r.list())) == sorted([keep.id, lapse.id])
        # Expiry is by time alone: nobody deletes the entry, readers leave it out.
        got = await poll_until(r.list, lambda ws: lapse.id not in _ids(ws), deadline=10.0)
        assert time.monotonic() - registered >= 0.3
        assert _ids(got) == [keep.id]
        assert _ids(await r.list(now=lapse.expires_at - 0.01)) == sorted([keep.id, lapse.id])
        assert _ids(await r.list(now=keep.expires_at)) == []

    async def test_purge_deletes_expired_entries_only(self, store: Backend) -> None:
        r = reg(store)
        t = now()
        dead = worker_info(last_seen=t - 10, expires_at=t - 5)
        live = worker_info(ttl=60)
        await r.register([dead, live])
        assert _ids(await r.list()) == [live.id]
        assert await r.purge_expired() == 1
        assert await r.purge_expired() == 0
        assert _ids(await r.list()) == [live.id]
        # An entry purged as expired comes back with its worker's next refresh.
        await r.register([msgspec.structs.replace(dead, last_seen=now(), expires_at=now() + 60)])
        assert sorted(_ids(await r.list())) == sorted([dead.id, live.id])
        assert await r.purge_expired(now=now() + 120) == 2
        assert await r.list() == []

    async def test_deregister_removes_at_once(self, store: Backend) -> None:
        r = reg(store)
        a, b = worker_info(), worker_info()
        await r.register([a, b])
        assert await r.deregister([a.id, "no-such-worker"]) == 1
        assert _ids(await r.list()) == [b.id]
        assert await r.deregister([a.id]) == 0
        assert await r.deregister([]) == 0

    async def test_odd_worker_ids_are_kept_apart(self, store: Backend) -> None:
        r = reg(store)
        odd = [worker_info(id=i) for i in ("h:1:ab", "../x", "a/b", "ä b.c", "_hdeadbeef")]
        await r.register(odd)
        assert sorted(_ids(await r.list())) == sorted(w.id for w in odd)
        assert await r.deregister([w.id for w in odd]) == len(odd)
        assert await r.list() == []

    @pytest.mark.backends_with("shared")
    async def test_two_connections_see_each_others_workers(
        self, store_and_url: tuple[Backend, str]
    ) -> None:
        store, url = store_and_url
        mine = worker_info(id="worker-a")
        await reg(store).register([mine])
        async with open_storage(url) as other:
            theirs = worker_info(id="worker-b", hostname="host-2", pid=7)
            await reg(other).register([theirs])
            assert await reg(other).list() == [mine, theirs]
            assert await reg(store).list() == [mine, theirs]
            assert await reg(other).deregister([mine.id]) == 1
            assert await reg(store).list() == [theirs]
