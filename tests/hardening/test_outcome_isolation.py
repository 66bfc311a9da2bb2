"""One oversized result never costs a neighbour its outcome: the big task ends
``error`` naming the limit, its neighbours in the same outcome batch succeed once."""

from __future__ import annotations

from pathlib import Path

import pytest

from omniq.core import OmniQ
from omniq.models import TaskStatus

pytestmark = pytest.mark.anyio
WAIT = 30.0
MIB = 1024 * 1024
NEIGHBOURS = 6


def events_url(url: str) -> str:
    return "memory://" if url.startswith("file") else url


@pytest.mark.parametrize(
    ("backend_id", "setting", "error_type"),
    [
        # 2 MB passes the 16 MiB setting and the serializer; NATS's max_payload binds.
        ("nats", None, "omniq.models.PayloadTooLargeError"),
        # 2 MB over a 1 MiB setting: the serializer refuses the return value.
        ("redis", MIB, "omniq.models.SerializationError"),
        ("sqlite", MIB, "omniq.models.SerializationError"),
    ],
)
async def test_oversized_result_fails_its_task_and_spares_its_neighbours(
    store_url: str, tmp_path: Path, backend_id: str, setting: int | None, error_type: str
) -> None:
    marker = tmp_path / "runs"
    opts: dict[str, object] = {"lease_seconds": 5.0, "retry_delay": 0.01}
    if setting is not None:
        opts["max_payload_bytes"] = setting
    async with OmniQ(store_url, event_storage=events_url(store_url), **opts) as oq:  # type: ignore[arg-type]
        big = await oq.enqueue("hardening_tasks:blob", (2_000_000,), max_retries=2)
        small = [
            await oq.enqueue("hardening_tasks:one", (str(marker),), max_retries=2)
            for _ in range(NEIGHBOURS)
        ]
        async with oq.worker(concurrency=NEIGHBOURS + 1):
            rb = await oq.get_result(big.id, wait=True, timeout=WAIT)
            rs = [await oq.get_result(t.id, wait=True, timeout=WAIT) for t in small]
    assert rb is not None and rb.status is TaskStatus.ERROR
    assert rb.error is not None and rb.error.type == error_type
    assert "exceed" in rb.error.message
    if backend_id == "nats":
        assert f"result of task {big.id}: " in rb.error.message
        assert "NATS max_payload 1,048,576" in rb.error.message
        assert rb.attempts == 1  # not retried: the run would return the same value
    for r in rs:
        assert r is not None and r.status is TaskStatus.SUCCESS and r.value == 1
        assert r.attempts == 1
    assert marker.read_text().count("ran") == NEIGHBOURS  # each neighbour ran once


@pytest.mark.parametrize("backend_id", ["redis", "sqlite"])
async def test_result_under_the_setting_whose_record_is_over_it_fails_by_the_store_limit(
    store_url: str, backend_id: str
) -> None:
    """A return value the serializer accepts (its bytes fit the setting) but whose stored
    result does not (the envelope around it) fails with the store's limit named."""
    setting = 256 * 1024
    async with OmniQ(
        store_url, event_storage=store_url, max_payload_bytes=setting, lease_seconds=5.0
    ) as oq:
        edge = await oq.enqueue("hardening_tasks:blob", (setting - 16,))
        ok = await oq.enqueue("hardening_tasks:blob", (10,))
        async with oq.worker(concurrency=2):
            re = await oq.get_result(edge.id, wait=True, timeout=WAIT)
            ro = await oq.get_result(ok.id, wait=True, timeout=WAIT)
    assert re is not None and re.status is TaskStatus.ERROR and re.error is not None
    assert re.error.type == "omniq.models.PayloadTooLargeError"
    assert f"result of task {edge.id}: " in re.error.message
    assert "OMNIQ_MAX_PAYLOAD_BYTES=256 KiB" in re.error.message
    assert ro is not None and ro.ok and ro.value == b"x" * 10
