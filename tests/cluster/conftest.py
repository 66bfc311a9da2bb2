"""Cluster tests: private multi-node engines (NATS cluster, PostgreSQL primary and
standby, PgBouncer, Redis Sentinel and Cluster) on ports 14000-14999, with the chaos
suite's worker fleet and auditor."""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
for p in (str(HERE), str(ROOT / "tests" / "chaos"), str(ROOT)):
    if p not in sys.path:
        sys.path.insert(0, p)
