"""A module no worker may import when an allow-list is configured: importing it leaves
a marker (the path in ``OMNIQ_FUZZ_MARKER``) so a test can prove it was never loaded."""

from __future__ import annotations

import os

_marker = os.environ.get("OMNIQ_FUZZ_MARKER")
if _marker:
    with open(_marker, "a") as f:
        f.write("imported\n")


def run() -> str:
    return "ran"
