"""Small HTML helpers: escaping, the page layout, times and the action forms.

Pages are plain server-rendered HTML (no template engine); every value from the store
goes through ``esc``.
"""

from __future__ import annotations

import html
import time
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime

__all__ = ["action", "ago", "esc", "layout", "stamp", "table"]

NAV = (
    ("overview", "", "Overview"),
    ("tasks", "tasks", "Tasks"),
    ("dead", "dead-letters", "Dead letters"),
    ("schedules", "schedules", "Schedules"),
    ("workers", "workers", "Workers"),
)


def esc(value: object) -> str:
    """``value`` as text, HTML-escaped (quotes too, so it is safe in attributes)."""
    return html.escape("" if value is None else str(value), quote=True)


def stamp(ts: float | None) -> str:
    """A Unix time as ``YYYY-MM-DD HH:MM:SS`` UTC ('' for None)."""
    if ts is None:
        return ""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S")


def ago(ts: float | None, at: float | None = None) -> str:
    """How long ago ``ts`` was, compactly (``42s``, ``3m 5s``, ``2h 10m``)."""
    if ts is None:
        return ""
    return span(max(0.0, (time.time() if at is None else at) - ts))


def span(seconds: float) -> str:
    s = int(seconds)
    if s < 60:
        return f"{seconds:.1f}s" if seconds < 10 else f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60}s"
    if s < 86400:
        return f"{s // 3600}h {s % 3600 // 60}m"
    return f"{s // 86400}d {s % 86400 // 3600}h"


def table(headers: Iterable[str], rows: Iterable[str], attrs: str = "") -> str:
    """A table whose rows are ready-made ``<tr>`` strings."""
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    return f"<table{attrs}><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def action(
    base: str,
    path: str,
    label: str,
    csrf: str,
    *,
    fields: Mapping[str, str] | None = None,
    danger: bool = False,
    confirm: str | None = None,
) -> str:
    """A one-button POST form carrying the CSRF token (works without JavaScript)."""
    hidden = f'<input type="hidden" name="csrf" value="{esc(csrf)}">'
    for k, v in (fields or {}).items():
        hidden += f'<input type="hidden" name="{esc(k)}" value="{esc(v)}">'
    onsubmit = f' onsubmit="return confirm({esc(repr(confirm))})"' if confirm else ""
    cls = ' class="danger"' if danger else ""
    return (
        f'<form class="inline" method="post" action="{esc(base + path)}"{onsubmit}>'
        f'{hidden}<button type="submit"{cls} data-action="{esc(label.lower())}">'
        f"{esc(label)}</button></form>"
    )


def layout(base: str, active: str, title: str, body: str, *, read_only: bool) -> str:
    """The whole page: head, navigation, and ``body``."""
    links = "".join(
        f'<a href="{esc(base)}/{path}" class="{"on" if key == active else ""}">{esc(name)}</a>'
        for key, path, name in NAV
    )
    ro = '<span class="ro">read-only</span>' if read_only else ""
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<title>{esc(title)} · OmniQ</title>"
        f'<link rel="stylesheet" href="{esc(base)}/static/style.css">'
        f'<script src="{esc(base)}/static/htmx.min.js" defer></script>'
        '</head><body><header><span class="brand">OmniQ</span>'
        f"{links}{ro}</header><main><h1>{esc(title)}</h1>{body}</main></body></html>"
    )
