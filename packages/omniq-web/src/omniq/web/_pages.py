"""The HTML of each page (pure functions of what the handlers read from the stores)."""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import quote, urlencode

from omniq.core import DeadLetter
from omniq.models import Progress, Schedule, Task, TaskEvent, TaskResult, TaskStatus, WorkerInfo

from ._html import action, ago, esc, span, stamp, table
from ._preview import preview
from ._stats import WINDOW, QueueStats

__all__ = [
    "dead_letters_body",
    "queues_fragment",
    "schedules_body",
    "task_body",
    "tasks_body",
    "workers_fragment",
]


class View:
    """What every page needs: the mount prefix, the CSRF token, the read-only switch."""

    def __init__(self, base: str, csrf: str, read_only: bool, poll: float) -> None:
        self.base = base
        self.csrf = csrf
        self.read_only = read_only
        self.poll = poll

    def act(self, path: str, label: str, **kw: object) -> str:
        return "" if self.read_only else action(self.base, path, label, self.csrf, **kw)  # type: ignore[arg-type]

    def live(self, path: str, inner: str, ident: str) -> str:
        """A block that htmx re-reads from ``path`` every ``poll`` seconds."""
        return (
            f'<div id="{ident}" hx-get="{esc(self.base + path)}" '
            f'hx-trigger="every {self.poll:g}s" hx-swap="outerHTML">{inner}</div>'
        )


def status_cell(status: TaskStatus) -> str:
    return f'<span class="s-{status.value}">{esc(status.value)}</span>'


def queues_fragment(v: View, rows: Sequence[QueueStats], age: float = 0.0) -> str:
    if not rows:
        return v.live("/fragments/queues", "<p class=muted>No queues hold tasks.</p>", "queues")
    statuses = list(TaskStatus)
    out = []
    for r in rows:
        q = r.info
        name = esc(q.name)
        state = '<span class="paused">paused</span>' if q.paused else "running"
        button = (
            v.act(f"/queues/{quote(q.name, safe='')}/resume", "Resume")
            if q.paused
            else v.act(f"/queues/{quote(q.name, safe='')}/pause", "Pause")
        )
        cells = "".join(
            f'<td class="n"><a href="{esc(v.base)}/tasks?'
            f'{esc(urlencode({"queue": q.name, "status": s.value}))}">'
            f"{q.counts.get(s, 0)}</a></td>"
            for s in statuses
        )
        per = "" if r.window >= WINDOW else f" in {span(r.window)}"
        done = "" if r.done is None else f"{r.done}{per}"
        failed = "" if r.failed is None else f"{r.failed}{per}"
        oldest = "" if r.oldest_pending is None else span(r.oldest_pending)
        out.append(
            f'<tr data-queue="{name}"><td><a href="{esc(v.base)}/tasks?'
            f'{esc(urlencode({"queue": q.name}))}">{name}</a>'
            f'</td><td class="state">{state}</td>{cells}<td class="n">{esc(done)}</td>'
            f'<td class="n">{esc(failed)}</td><td class="n">{esc(oldest)}</td>'
            f"<td>{button}</td></tr>"
        )
    headers = ["queue", "state", *(s.value for s in statuses)]
    minutes = f"{WINDOW / 60:g} min"
    headers += [f"done ({minutes})", f"failed ({minutes})", "oldest pending", ""]
    note = f'<p class="muted counts-age">Counts read {esc(span(age))} ago.</p>' if age >= 1 else ""
    return v.live("/fragments/queues", note + table(headers, out), "queues")


def _task_row(v: View, t: Task) -> str:
    return (
        f'<tr><td><a href="{esc(v.base)}/tasks/{esc(t.id)}"><code>{esc(t.id)}</code></a></td>'
        f"<td>{esc(t.queue)}</td><td><code>{esc(t.func)}</code></td>"
        f"<td>{status_cell(t.status)}</td><td class=n>{t.attempt}</td>"
        f"<td>{esc(stamp(t.created_at))}</td></tr>"
    )


def tasks_body(
    v: View,
    tasks: Sequence[Task],
    filters: dict[str, str],
    next_before: str | None,
    scanned_note: str,
) -> str:
    def field(name: str, label: str, kind: str = "text") -> str:
        value = esc(filters.get(name, ""))
        return f'<label>{label}<input type="{kind}" name="{name}" value="{value}"></label>'

    options = "".join(
        f'<option value="{s.value}"{" selected" if filters.get("status") == s.value else ""}>'
        f"{s.value}</option>"
        for s in TaskStatus
    )
    form = (
        f'<form class="filters" method="get" action="{esc(v.base)}/tasks">'
        + field("queue", "queue")
        + f'<label>status<select name="status"><option value="">any</option>{options}'
        "</select></label>"
        + field("func", "function contains")
        + field("since", "created since (UTC)", "datetime-local")
        + field("until", "created before (UTC)", "datetime-local")
        + '<button type="submit">Filter</button></form>'
    )
    rows = [_task_row(v, t) for t in tasks]
    body = form + (
        table(["id", "queue", "function", "status", "attempt", "created"], rows)
        if rows
        else "<p class=muted>No tasks match.</p>"
    )
    links = []
    keep = {k: val for k, val in filters.items() if val}
    if filters.get("before"):
        first = {k: val for k, val in keep.items() if k != "before"}
        links.append(f'<a href="{esc(v.base)}/tasks?{esc(urlencode(first))}">newest</a>')
    if next_before:
        nxt = dict(keep, before=next_before)
        links.append(f'<a rel="next" href="{esc(v.base)}/tasks?{esc(urlencode(nxt))}">older →</a>')
    note = f'<p class="muted">{esc(scanned_note)}</p>' if scanned_note else ""
    return body + note + f"<p>{' · '.join(links)}</p>"


def _dl(pairs: Sequence[tuple[str, str]]) -> str:
    return (
        "<dl class=kv>" + "".join(f"<dt>{esc(k)}</dt><dd>{val}</dd>" for k, val in pairs) + "</dl>"
    )


def trail_fragment(v: View, task_id: str, events: Sequence[TaskEvent], live: bool) -> str:
    rows = [
        f"<tr><td>{esc(stamp(e.timestamp))}</td><td>{esc(e.type.value)}</td>"
        f"<td>{esc(e.worker_id or '')}</td><td><code>"
        + esc(", ".join(f"{k}={val}" for k, val in e.metadata.items() if k != "func"))
        + "</code></td></tr>"
        for e in events
    ]
    inner = (
        table(["time", "event", "worker", "detail"], rows, ' id="trail-table"')
        if rows
        else "<p class=muted>No events recorded (is an event store configured?).</p>"
    )
    if not live:
        return f'<div id="trail">{inner}</div>'
    return v.live(f"/tasks/{task_id}/trail", inner, "trail")


def task_body(
    v: View,
    t: Task,
    result: TaskResult | None,
    progress: Progress | None,
    events: Sequence[TaskEvent],
) -> str:
    pairs = [
        ("id", f"<code>{esc(t.id)}</code>"),
        ("function", f"<code>{esc(t.func)}</code>"),
        ("queue", esc(t.queue)),
        ("status", status_cell(t.status)),
        ("attempt", f"{t.attempt} of {t.max_retries + 1}"),
        ("priority", str(t.priority)),
        ("created", esc(stamp(t.created_at))),
    ]
    if t.eta is not None:
        pairs.append(("due", esc(stamp(t.eta))))
    if t.key:
        pairs.append(("key", esc(t.key)))
    if t.depends_on:
        deps = " ".join(
            f'<a href="{esc(v.base)}/tasks/{esc(d)}">{esc(d)}</a>' for d in t.depends_on
        )
        pairs.append(("depends on", deps))
    if progress is not None:
        shown = (
            f"{progress.done:g}"
            if progress.total is None
            else f"{progress.done:g}/{progress.total:g}"
        )
        if progress.message:
            shown += f" — {progress.message}"
        pairs.append(
            (
                "progress",
                esc(shown) + f" <span class=muted>({esc(ago(progress.updated_at))} ago)</span>",
            )
        )
    if t.func_payload is not None:
        pairs.append(("function payload", esc(preview(t.func_payload))))
    body = _dl(pairs)
    body += "<h2>Arguments</h2><pre id=args>" + esc(preview(t.payload) or "(none)") + "</pre>"
    if result is not None:
        rpairs = [("status", status_cell(result.status)), ("attempts", str(result.attempts))]
        if result.started_at and result.finished_at:
            rpairs.append(("duration", f"{result.finished_at - result.started_at:.3f}s"))
        if result.worker_id:
            rpairs.append(("worker", esc(result.worker_id)))
        if result.payload is not None:
            rpairs.append(("value", f"<pre>{esc(preview(result.payload))}</pre>"))
        body += "<h2>Result</h2>" + _dl(rpairs)
        if result.error is not None:
            e = result.error
            body += f"<h2>Error</h2><p><code>{esc(e.type)}: {esc(e.message)}</code></p>"
            if e.traceback:
                body += f"<pre id=traceback>{esc(e.traceback)}</pre>"
    if t.status is TaskStatus.ERROR:
        body += v.act(
            "/dead-letters/requeue", "Requeue", fields={"id": t.id, "next": f"/tasks/{t.id}"}
        )
    body += "<h2>Event trail</h2>" + trail_fragment(v, t.id, events, not t.status.is_terminal)
    return body


def dead_letters_body(
    v: View, letters: Sequence[DeadLetter], queue: str, offset: int, more: bool
) -> str:
    rows = [
        f'<tr data-task="{esc(d.task.id)}"><td><a href="{esc(v.base)}/tasks/{esc(d.task.id)}">'
        f"<code>{esc(d.task.id)}</code></a></td><td>{esc(d.task.queue)}</td>"
        f"<td><code>{esc(d.task.func)}</code></td><td>{esc(d.error)}</td>"
        f"<td>{esc(stamp(d.result.finished_at if d.result else None))}</td>"
        f"<td>{v.act('/dead-letters/requeue', 'Requeue', fields={'id': d.task.id})}</td></tr>"
        for d in letters
    ]
    head = v.act(
        "/dead-letters/purge", "Purge all", danger=True, confirm="Delete every dead letter?"
    )
    body = f"<p>{head}</p>" if letters else ""
    body += (
        table(["id", "queue", "function", "error", "failed at", ""], rows)
        if rows
        else "<p class=muted>No dead letters.</p>"
    )
    if more:
        q = urlencode(
            {"queue": queue, "offset": offset + len(letters)}
            if queue
            else {"offset": offset + len(letters)}
        )
        body += f'<p><a rel="next" href="{esc(v.base)}/dead-letters?{esc(q)}">more →</a></p>'
    return body


def schedules_body(v: View, schedules: Sequence[Schedule]) -> str:
    rows = []
    for s in schedules:
        how = s.expression or (f"every {s.interval:g}s" if s.interval else stamp(s.at))
        toggle = (
            v.act(f"/schedules/{s.id}/resume", "Resume")
            if s.state.value == "paused"
            else v.act(f"/schedules/{s.id}/pause", "Pause")
        )
        delete = v.act(
            f"/schedules/{s.id}/delete", "Delete", danger=True, confirm="Delete this schedule?"
        )
        rows.append(
            f'<tr data-schedule="{esc(s.id)}"><td>{esc(s.name or s.id)}</td>'
            f"<td><code>{esc(s.task.func)}</code></td><td>{esc(s.kind.value)}: {esc(how)}</td>"
            f"<td>{esc(s.state.value)}</td><td>{esc(stamp(s.next_run_at))}</td>"
            f"<td>{esc(stamp(s.last_run_at))}</td><td class=n>{s.runs}</td>"
            f"<td>{toggle} {delete}</td></tr>"
        )
    if not rows:
        return "<p class=muted>No schedules.</p>"
    return table(["name", "function", "when", "state", "next run", "last run", "runs", ""], rows)


def workers_fragment(v: View, workers: Sequence[WorkerInfo]) -> str:
    rows = [
        f"<tr><td><code>{esc(w.id)}</code></td><td>{esc(w.hostname)}</td><td class=n>{w.pid}</td>"
        f"<td>{esc(', '.join(w.queues))}</td><td>{esc(w.worker_type.value)}</td>"
        f"<td class=n>{len(w.running)}/{w.concurrency}</td><td>{esc(ago(w.started_at))}</td>"
        f"<td>{esc(ago(w.last_seen))} ago</td><td>{esc(w.version)}</td></tr>"
        for w in workers
    ]
    inner = (
        table(["id", "host", "pid", "queues", "type", "running", "up", "seen", "version"], rows)
        if rows
        else "<p class=muted>No live workers.</p>"
    )
    return v.live("/fragments/workers", inner, "workers")
