"""omniq.testing: OmniQ's testing kit and pytest plugin.

``MemoryOmniQ`` is an ``OmniQ`` in memory with its own ``ManualClock``; it adds
``assert_enqueued`` and ``enqueued`` to OmniQ's ``drain``. The plugin
(``omniq.testing.plugin``, loaded by pytest through its entry point) provides the
fixtures ``omniq``, ``async_omniq``, ``inline_omniq`` and ``omniq_clock``.
"""

from __future__ import annotations

from omniq.models import ManualClock, TaskFailedError, use_clock
from omniq.models.lowlevel import publish

from ._kit import ANY, MemoryOmniQ

__all__ = ["ANY", "ManualClock", "MemoryOmniQ", "TaskFailedError", "use_clock"]

publish(globals())
del publish
