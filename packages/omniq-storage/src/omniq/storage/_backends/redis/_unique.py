"""Unique jobs on Redis. The enqueue script keeps a key reserved by a task whose
``unique_for`` window (the ``uu`` field of its hash) has not ended, whatever its state;
``on_conflict="replace"`` is a second script that swaps the envelope and eta of the
holder only while it is still pending."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import msgspec

from omniq.models import Task, TaskStatus
from omniq.storage._corrupt import CORRUPT_FUNC
from omniq.storage._remote import encode

from ._engine import opt_repr

__all__ = ["replace_holders", "window_end"]


def window_end(task: Task) -> str:
    """The enqueue script's ``unique_for`` field: the window's end, '' for none."""
    return opt_repr(task.unique_until())


async def replace_holders(
    tasks: Sequence[Task],
    out: list[Task],
    script: Callable[..., Awaitable[Any]],
    reread: Callable[[str], Awaitable[Task | None]],
) -> None:
    """Apply ``on_conflict="replace"`` in place: each task of ``tasks`` that met a
    pending holder (``out``, the enqueue's answer) gives it its payload and eta."""
    for i, (t, got) in enumerate(zip(tasks, out, strict=True)):
        if t.on_conflict != "replace" or got.id == t.id:
            continue
        if got.status is not TaskStatus.PENDING or got.func == CORRUPT_FUNC:
            continue
        upd = msgspec.structs.replace(got, payload=t.payload, eta=t.eta)
        if await script("replace", got.id, encode(upd), opt_repr(t.eta)):
            out[i] = upd
        else:  # claimed or ended meanwhile: the holder as it is now
            out[i] = await reread(got.id) or got
