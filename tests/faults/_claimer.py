"""One claiming process of the exactly-once test: claims and completes until the queue
is drained, writing every id it completed (one per line) to the output file."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from omniq.models import TaskStatus
from omniq.storage import Completion, open_storage


async def main(url: str, queue: str, out: str) -> None:
    async with open_storage(url) as backend:
        q = backend.tasks
        assert q is not None
        done: list[str] = []
        while True:
            batch = await q.claim([queue], f"w{out}", limit=50, lease=120)
            if not batch:
                if await q.count(queue=queue, status=TaskStatus.PENDING) == 0:
                    break
                await q.wait_for_work([queue], 0.2)
                continue
            report = await q.complete([Completion(c.task.id, c.token) for c in batch])
            assert not report.stale, report.stale
            done += report.done
    Path(out).write_text("\n".join(done))  # noqa: ASYNC240


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3]))
