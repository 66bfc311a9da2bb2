"""Many hosts on one machine: Linux network namespaces on a bridge (see ``_net``)."""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
for p in (str(HERE), str(ROOT / "tests" / "chaos"), str(ROOT)):
    if p not in sys.path:
        sys.path.insert(0, p)
