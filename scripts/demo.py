"""OmniQ's main job: an end-to-end run on the embedded default (SQLite, no server).

Enqueues a few hundred tasks (blocking and async functions, one that fails twice and is
retried, a small dependency chain, one that times out), runs a worker with a progress
bar, then prints a results table and the event trail of one task.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

import demo_tasks as jobs
from omniq.core import OmniQ
from omniq.models import TaskStatus, to_datetime

console = Console()


def main() -> int:
    base = Path(tempfile.mkdtemp(prefix="omniq-demo-"))
    # The embedded default: SQLite under BASE_DIR; events go to the same database.
    oq = OmniQ(base_dir=str(base), event_storage_type="sqlite", retry_delay=0.05)
    console.rule("[bold]OmniQ demo")
    console.print(f"store: {oq.task_queue_url}")
    with oq:
        t0 = time.perf_counter()
        batch = [oq.build(jobs.resize, (i, 640)) for i in range(200)]
        batch += [oq.build(jobs.fetch, (p,)) for p in range(100)]
        tasks = oq.enqueue_many_sync(batch)  # one round trip for 300 tasks
        flaky = oq.enqueue_sync(jobs.flaky_payment, (str(base / "attempts"),), max_retries=3)
        ex = oq.build(jobs.extract, ("orders.csv",))
        tr = oq.build(jobs.transform, ("orders",), depends_on=ex)
        ld = oq.build(jobs.load, ("orders",), depends_on=tr)
        oq.enqueue_many_sync([ex, tr, ld])
        slow = oq.enqueue_sync(jobs.stuck, (1.5,), timeout=0.5, max_retries=0)
        total = len(tasks) + 5
        console.print(f"enqueued {total} tasks in {time.perf_counter() - t0:.3f}s")

        t1 = time.perf_counter()
        with (
            oq.worker(concurrency=32),
            Progress(
                TextColumn("[bold]running"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=console,
            ) as progress,
        ):
            bar = progress.add_task("tasks", total=total)
            while True:
                done = sum(n for (_, st), n in oq.counts_sync().items() if st.is_terminal)
                progress.update(bar, completed=done)
                if done >= total:
                    break
                time.sleep(0.05)
        console.print(f"worker finished {total} tasks in {time.perf_counter() - t1:.2f}s")

        table = Table(title="results")
        for col in ("task", "function", "status", "attempts", "value / error"):
            table.add_column(col)
        shown = [tasks[0], tasks[250], flaky, ex, tr, ld, slow]
        for task in shown:
            r = oq.get_result_sync(task.id)
            assert r is not None
            what = (
                repr(r.value) if r.ok else f"{r.error.type}: {r.error.message}" if r.error else ""
            )
            color = {"success": "green", "error": "red"}.get(r.status.value, "yellow")
            table.add_row(
                task.id[-12:],
                task.func.split(":")[1],
                f"[{color}]{r.status.value}",
                str(r.attempts),
                what,
            )
        console.print(table)
        counts: dict[TaskStatus, int] = {}
        for (_, st), n in oq.counts_sync().items():
            counts[st] = counts.get(st, 0) + n
        console.print("totals: " + ", ".join(f"{st.value}={n}" for st, n in counts.items()))

        trail = Table(title=f"event trail of {flaky.func}")
        for col in ("time", "event", "detail"):
            trail.add_column(col)
        for e in oq.get_events_sync(flaky.id):
            detail = ", ".join(
                f"{k}={v:.3f}" if isinstance(v, float) and k != "eta" else f"{k}={v}"
                for k, v in e.metadata.items()
                if k not in ("func", "expires_at", "eta")
            )
            trail.add_row(
                to_datetime(e.timestamp).strftime("%H:%M:%S.%f")[:-3], e.type.value, detail
            )
        console.print(trail)
    ok = counts.get(TaskStatus.SUCCESS, 0) == total - 1 and counts.get(TaskStatus.ERROR, 0) == 1
    console.print("[bold green]demo OK" if ok else "[bold red]unexpected outcome")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
