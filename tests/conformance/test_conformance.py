"""omniq-storage's backends against the conformance suite, run exactly as an outside
backend runs it: the suite from ``omniq.storage.testing``, the specs of the backends."""

from __future__ import annotations

from omniq.storage.testing import builtin_specs
from omniq.storage.testing.suite import *  # noqa: F403

CONFORMANCE_SPECS = builtin_specs()
