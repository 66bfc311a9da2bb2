"""Concurrent single enqueues (what a web server's handlers issue) share storage round
trips; each caller still gets its own stored Task, or its own error."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import e2e_tasks as t
import pytest

from omniq.core import OmniQ
from omniq.models import InvalidTaskError, PayloadTooLargeError

pytestmark = pytest.mark.anyio


async def test_concurrent_enqueues_are_all_stored_each_caller_its_own(oq: OmniQ) -> None:
    got = await asyncio.gather(
        *(oq.enqueue(t.add, (i, i), queue="c", delay=3600) for i in range(120))
    )
    assert len({task.id for task in got}) == 120
    by_id = {task.id: task for task in await oq.list_tasks(limit=1000)}
    assert set(by_id) == {task.id for task in got}
    for task in got:  # each caller's Task is the one built from its own call
        assert task.payload is not None and task.payload == by_id[task.id].payload
    payloads = {task.payload.data for task in got if task.payload is not None}
    assert len(payloads) == 120


async def test_concurrent_enqueues_keep_call_order(oq: OmniQ) -> None:
    got = await asyncio.gather(*(oq.enqueue(t.add, (i, 0), queue="o") for i in range(50)))
    listed = [x.id for x in await oq.list_tasks(queue="o", limit=100)]
    assert sorted(listed) == sorted(x.id for x in got)
    assert [x.id for x in got] == sorted(x.id for x in got)  # ids are time-ordered


async def test_concurrent_enqueues_with_one_key_dedupe(oq: OmniQ) -> None:
    got = await asyncio.gather(
        *(oq.enqueue(t.add, (i, i), key="same", delay=3600) for i in range(20))
    )
    assert len({task.id for task in got}) == 1
    assert len(await oq.list_tasks()) == 1


async def test_a_bad_enqueue_fails_only_its_own_caller(make_oq: Callable[..., OmniQ]) -> None:
    oq = make_oq(max_payload_bytes=4096)
    async with oq:
        calls = [
            oq.enqueue(t.add, ("x" * 4050, ""))  # the arguments fit, the task does not
            if i == 7
            else oq.enqueue(t.add, (1, 2), max_retries=-1)
            if i == 13
            else oq.enqueue(t.add, (i, i))
            for i in range(30)
        ]
        got = await asyncio.gather(*calls, return_exceptions=True)
        assert isinstance(got[7], PayloadTooLargeError)
        assert isinstance(got[13], InvalidTaskError)
        ok = [g for i, g in enumerate(got) if i not in (7, 13)]
        assert all(not isinstance(g, BaseException) for g in ok)
        assert len(await oq.list_tasks(limit=100)) == 28
