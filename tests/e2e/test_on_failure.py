"""``on_failure`` follow-ups run for every failure-terminal state of their task (an
error after its retries, ``oq.cancel``, cancellation by a failed dependency, TTL expiry)
and always receive that task's result, as a mapping of its fields."""

from __future__ import annotations

from pathlib import Path

import e2e_tasks as t
import msgspec
import pytest

from omniq.core import OmniQ
from omniq.models import TaskStatus, now

pytestmark = pytest.mark.anyio

WAIT = 20.0

KINDS = {
    "error": ("error", "RuntimeError"),
    "cancel": ("cancelled", "TaskCancelledError"),
    "dependency": ("cancelled", "TaskCancelledError"),
    "expiry": ("expired", "TaskExpiredError"),
}


@pytest.mark.parametrize("kind", list(KINDS))
async def test_on_failure_runs_for_every_failure_with_the_result(
    oq: OmniQ, tmp_path: Path, kind: str
) -> None:
    log = str(tmp_path / "log")
    # Served by the same worker: every failure writes the ended task's result in the
    # step that releases the follow-up (a worker's failure cascading to ``victim``
    # included), so the follow-up always finds it.
    on_fail = oq.build(t.failure_report, (log,))
    on_ok = oq.build(t.record, (log, "on-success"))
    if kind == "error":
        victim = await oq.enqueue(
            t.always_fails, max_retries=1, on_failure=on_fail, on_success=on_ok
        )
    elif kind == "cancel":
        victim = await oq.enqueue(t.add, (1, 2), delay=3600, on_failure=on_fail, on_success=on_ok)
        assert await oq.cancel(victim.id)
    elif kind == "dependency":
        first = await oq.enqueue(t.always_fails, max_retries=0)
        victim = await oq.enqueue(
            t.add, (1, 2), depends_on=first, on_failure=on_fail, on_success=on_ok
        )
    else:
        built = oq.build(t.add, (1, 2), ttl=60, on_failure=on_fail, on_success=on_ok)
        [victim] = await oq.enqueue_many([msgspec.structs.replace(built, expires_at=now() - 1)])
    async with oq.worker(concurrency=2):
        skipped = await oq.get_result(on_ok.id, wait=True, timeout=WAIT)
        assert await oq.get_result(victim.id, wait=True, timeout=WAIT) is not None
        r = await oq.get_result(on_fail.id, wait=True, timeout=WAIT)
    status, error_type = KINDS[kind]
    assert r is not None and r.status is TaskStatus.SUCCESS, r
    assert r.value == {"task_id": victim.id, "status": status, "error_type": error_type}
    assert skipped is not None and skipped.status is TaskStatus.CANCELLED
    assert "on-success" not in t.read_file(log)
    stored = await oq.get_result(victim.id)
    assert stored is not None and stored.status.value == status
