"""Tables: rich when it is installed in the workspace, plain text otherwise; and a
Markdown rendering for docs/performance.md."""

from __future__ import annotations

from typing import Any

Row = list[str]


def fmt(value: Any, digits: int = 0) -> str:
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    return f"{value:,.{digits}f}"


def markdown(title: str, headers: Row, rows: list[Row]) -> str:
    lines = [f"**{title}**", "", "| " + " | ".join(headers) + " |"]
    lines.append("|" + "|".join("---" for _ in headers) + "|")
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def show(title: str, headers: Row, rows: list[Row]) -> None:
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
        print(f"\n{title}")
        print("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)))
        for r in rows:
            print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))
        return
    table = Table(title=title)
    for h in headers:
        table.add_column(h, justify="right" if h.startswith("W") else "left")
    for r in rows:
        table.add_row(*r)
    Console(width=200).print(table)
