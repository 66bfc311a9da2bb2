"""OmniQ's main job for now: build tasks and schedules, configure from OMNIQ_* variables,
and serialize arguments (msgspec, and signed dill when enabled)."""

from __future__ import annotations

import os

from omniq.config import ConfigProvider
from omniq.models import Schedule, Task, to_datetime
from omniq.serialization import SerializationManager


def main() -> None:
    provider = ConfigProvider.from_env({**os.environ, "OMNIQ_TASK_TTL": "3600"}, retry_attempts=5)
    s = provider.settings
    print(f"settings: task_ttl={s.task_ttl} retries={s.retry_attempts} queue={s.task_queue_type}")

    plain = SerializationManager()
    payload = plain.dumps_call(("ada@example.com",), {"tags": ["welcome"], "retry": True})
    task = Task(func="app.mail:send", payload=payload, queue="mail", priority=5)
    print(f"task {task.id}: {task.func} format={payload.format} bytes={len(payload.data)}")
    print(f"  arguments back: {plain.loads_call(payload)}")

    signed = SerializationManager(dill_enabled=True, secret="demo-secret-32-bytes-long-enough!")
    signed_payload = signed.dumps({1, 2, 3})
    back = signed.loads(signed_payload)
    print(f"a set goes through signed dill: format={signed_payload.format} -> {back}")

    nightly = Schedule.create(task, cron="0 3 * * *", timezone="Europe/Berlin")
    every = Schedule.create(task, interval=30)
    assert nightly.next_run_at is not None and every.next_run_at is not None
    print(f"cron 0 3 * * * Europe/Berlin next: {to_datetime(nightly.next_run_at).isoformat()}")
    print(f"every 30 s next: {to_datetime(every.next_run_at).isoformat()}")


if __name__ == "__main__":
    main()
