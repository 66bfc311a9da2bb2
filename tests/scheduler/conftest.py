"""Scheduler suites: the repository root on sys.path (for the ``tests.*`` modules their
subprocesses import)."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
