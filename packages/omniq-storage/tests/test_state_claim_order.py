"""The in-process state machine's claim (memory and file stores) against a plain
reference: ready tasks in ``(-priority, id)`` order across the claimed queues, a capped
key's tasks passed over once it is full, tasks of other keys and without limits not
held up behind them. Random workloads with a fixed seed: enqueues, claims, completions,
releases, standbys and lapsed leases interleaved."""

from __future__ import annotations

import random

import pytest

from omniq.models import ClaimedTask, Task, TaskStatus
from omniq.storage import Completion, LeaseRef
from omniq.storage._state import QueueState
from omniq.storage.testing.helpers import task

QUEUES = ["a", "b", "c"]
KEYS = [None, "k1", "k2", "k3"]
CAPS = {"k1": 1, "k2": 2, "k3": 3}


def _expected(s: QueueState, queues: list[str], limit: int, now: float) -> list[str]:
    """What a claim of ``limit`` from ``queues`` must return, computed from the records."""
    running: dict[str, int] = {}
    for rec in s.recs.values():
        t = rec.task
        if (
            t.limit_key is not None
            and t.status is TaskStatus.RUNNING
            and rec.lease_expires_at is not None
            and rec.lease_expires_at > now
            and not (
                rec.standby_of is not None
                and (b := s.recs.get(rec.standby_of[0])) is not None
                and b.token == rec.standby_of[1]
                and b.task.status is TaskStatus.RUNNING
                and b.lease_expires_at is not None
                and b.lease_expires_at > now
            )
        ):
            running[t.limit_key] = running.get(t.limit_key, 0) + 1
    ready = sorted(
        (r.task for r in s.recs.values() if r.task.queue in queues and s._is_ready(r, now)),
        key=lambda t: (-t.priority, t.id),
    )
    out: list[str] = []
    full: set[str] = set()
    for t in ready:
        if len(out) >= limit:
            break
        key = t.limit_key
        if key is not None:
            if key in full or running.get(key, 0) >= CAPS[key]:
                full.add(key)
                continue
            running[key] = running.get(key, 0) + 1
        out.append(t.id)
    return out


def _new(rng: random.Random, n: int) -> Task:
    key = rng.choice(KEYS)
    limits = {} if key is None else {"limit_key": key, "max_concurrency": CAPS[key]}
    return task(id=f"t{n:05d}", queue=rng.choice(QUEUES), priority=rng.randint(0, 2), **limits)


@pytest.mark.parametrize("seed", range(8))
def test_claims_match_the_reference(seed: int) -> None:
    rng = random.Random(seed)
    s = QueueState()
    now = 1000.0
    n = 0
    held: list[ClaimedTask] = []  # claims running now
    for _ in range(400):
        now += rng.choice([0.0, 0.01, 0.5])
        op = rng.random()
        if op < 0.35:
            batch = []
            for _ in range(rng.randint(1, 6)):
                batch.append(_new(rng, n))
                n += 1
            s.enqueue(batch, now)
        elif op < 0.7:
            queues = rng.sample(QUEUES, rng.randint(1, 3))
            limit = rng.randint(1, 5)
            s.reclaim_expired(now)  # the claim's first step, so the reference sees it too
            want = _expected(s, queues, limit, now)
            got = s.claim(queues, "w", limit, rng.choice([0.3, 30.0]), now)
            assert [c.task.id for c in got] == want
            held.extend(got)
        elif op < 0.8 and held:
            c = held.pop(rng.randrange(len(held)))
            s.complete([Completion(c.task.id, c.token)], "cancel", now)
        elif op < 0.87 and held:
            c = held.pop(rng.randrange(len(held)))
            s.release([LeaseRef(c.task.id, c.token)], now)
        elif op < 0.95 and held:
            behind = rng.choice(held)
            sb = s.claim_standby(QUEUES, "w", (behind.task.id, behind.token), 30.0, now)
            if sb is not None:
                assert sb.task.limit_key == behind.task.limit_key
                held.append(sb)
        else:
            now += 1.0  # the short leases lapse
    assert n > 100
