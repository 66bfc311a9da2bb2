"""memo:// against OmniQ's storage conformance suite (the contracts an in-process,
single-connection store can take part in)."""

from __future__ import annotations

from omniq.storage.testing import BackendSpec
from omniq.storage.testing.suite import (  # noqa: F401  (collected by pytest here)
    TestDeadLetters,
    TestDependencies,
    TestEvents,
    TestFinish,
    TestHandover,
    TestPausedQueues,
    TestQueue,
    TestResults,
    TestSchedules,
)

CONFORMANCE_SPECS = [BackendSpec("memo", lambda tmp: "memo://")]
