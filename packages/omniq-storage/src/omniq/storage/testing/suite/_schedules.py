"""Schedule storage: CRUD, pause/resume persisted, claim_due fires a run once."""

from __future__ import annotations

import pytest

from omniq.models import Schedule, ScheduleState, Task
from omniq.storage import Backend, ScheduleRun, open_storage
from omniq.storage.testing._specs import BackendSpec
from omniq.storage.testing.helpers import NOOP, ss

T0 = 1_800_000_000.0


def sched(**kw: object) -> Schedule:
    task = Task(func=NOOP)
    kw.setdefault("interval", 60.0)
    kw.setdefault("start_at", T0)
    return Schedule.create(task, created_at=T0, **kw)  # type: ignore[arg-type]


class TestSchedules:
    """Schedule storage: CRUD, pause/resume persisted, claim_due fires a run once."""

    pytestmark = pytest.mark.anyio

    async def test_put_get_list_delete(self, store: Backend) -> None:
        s = ss(store)
        a, b = sched(name="a"), sched(name="b")
        await s.put([b, a])
        assert await s.get(a.id) == a
        assert await s.get("nope") is None
        assert [x.id for x in await s.list()] == sorted([a.id, b.id])
        paused = await s.pause(b.id)
        assert paused is not None and paused.state is ScheduleState.PAUSED
        assert [x.id for x in await s.list(state=ScheduleState.ACTIVE)] == [a.id]
        assert await s.delete(a.id) is True
        assert await s.delete(a.id) is False
        assert [x.id for x in await s.list()] == [b.id]

    async def test_claim_due_fires_once_and_advances(self, store: Backend) -> None:
        s = ss(store)
        a = sched()
        await s.put([a])
        assert a.next_run_at is not None
        assert await s.claim_due(a.next_run_at - 1) == []
        runs = await s.claim_due(a.next_run_at + 1)
        assert len(runs) == 1 and runs[0].due == a.next_run_at
        assert runs[0].schedule.next_run_at == a.next_run_at + 60
        assert await s.claim_due(a.next_run_at + 1) == []
        stored = await s.get(a.id)
        assert stored is not None and stored.next_run_at == a.next_run_at + 60 and stored.runs == 1

    async def test_pause_resume_persisted(
        self, store_and_url: tuple[Backend, str], backend_spec: BackendSpec
    ) -> None:
        store, url = store_and_url
        s = ss(store)
        a = sched()
        await s.put([a])
        assert a.next_run_at is not None
        await s.pause(a.id)
        assert await s.claim_due(a.next_run_at + 1) == []
        if backend_spec.persistent:
            async with open_storage(url) as other:
                got = await ss(other).get(a.id)
                assert got is not None and got.state is ScheduleState.PAUSED
        resumed = await s.resume(a.id, now=a.next_run_at + 1)
        assert resumed is not None and resumed.state is ScheduleState.ACTIVE
        assert await s.pause("nope") is None and await s.resume("nope") is None
        if backend_spec.persistent:
            async with open_storage(url) as other:
                got = await ss(other).get(a.id)
                assert got is not None and got.state is ScheduleState.ACTIVE
        assert len(await s.claim_due(a.next_run_at + 1)) == 1

    async def test_two_claimers_fire_a_due_run_once(
        self, store_and_url: tuple[Backend, str], backend_spec: BackendSpec
    ) -> None:
        import anyio

        store, url = store_and_url
        s = ss(store)
        schedules = [sched() for _ in range(20)]
        await s.put(schedules)
        at = T0 + 61
        if backend_spec.shared:
            async with open_storage(url) as other:
                got: list[list[ScheduleRun]] = [[], []]

                async def claim(i: int, st: Backend) -> None:
                    for _ in range(5):
                        got[i].extend(await ss(st).claim_due(at, limit=7))

                async with anyio.create_task_group() as tg:
                    tg.start_soon(claim, 0, store)
                    tg.start_soon(claim, 1, other)
                runs = got[0] + got[1]
        else:
            runs = list(await s.claim_due(at)) + list(await s.claim_due(at))
        ids = [r.schedule.id for r in runs]
        assert sorted(ids) == sorted(x.id for x in schedules)
