"""Start a Python process that monkey-patches for gevent before anything else loads.

gevent's ``monkey.patch_all()`` must run before the modules it patches are used to
build objects: anyio, asyncio and the storage drivers read ``threading`` and
``socket`` when they are imported. Importing ``omniq.core`` already loads them, so a
process that learns it runs gevent workers only after that (the ``omniq worker``
command, a supervised worker process) starts its work in a fresh interpreter whose
first statement patches, then calls the same entry point.
"""

from __future__ import annotations

import sys

__all__ = ["boot_command", "patched"]

_BOOT = """\
try:
    from gevent import monkey
except ImportError:
    pass
else:
    monkey.patch_all()
import sys
sys.argv[0] = {argv0!r}
from {module} import {func}
{func}()
"""


def boot_command(module: str, func: str, args: list[str], *, argv0: str = "omniq") -> list[str]:
    """The command line of a Python process that patches for gevent (when gevent is
    installed; otherwise the entry point reports the missing extra itself), then runs
    ``module.func()`` with ``args`` as ``sys.argv[1:]``."""
    code = _BOOT.format(argv0=argv0, module=module, func=func)
    return [sys.executable, "-c", code, *args]


def patched() -> bool:
    """True when gevent has monkey-patched this process (without importing gevent)."""
    monkey = sys.modules.get("gevent.monkey")
    return monkey is not None and bool(monkey.is_module_patched("threading"))
