"""The conformance suite: one test class per storage contract.

Import the classes into a test module (``from omniq.storage.testing.suite import *``)
and pytest collects them there, parametrized over the registered specs by
``omniq.storage.testing.plugin``.
"""

from __future__ import annotations

from ._dead_letters import TestDeadLetters
from ._dependencies import TestDependencies
from ._ended_results import TestEndedResults
from ._events import TestEvents
from ._finish import TestFinish
from ._flow_limits import TestFlowLimits, TestFlowLimitsMultiprocess
from ._handover import TestHandover
from ._multiprocess import TestMultiprocess
from ._paging import TestListPage
from ._paused import TestPausedQueues
from ._queue import TestQueue
from ._results import TestResults
from ._run_if import TestRunIf
from ._schedules import TestSchedules
from ._standby import TestStandby
from ._task_control import TestTaskControl
from ._transactional import TestTransactionalEnqueue
from ._unique import TestUniqueJobs
from ._workers import TestWorkerRegistry

__all__ = [
    "TestDeadLetters",
    "TestDependencies",
    "TestEndedResults",
    "TestEvents",
    "TestFinish",
    "TestFlowLimits",
    "TestFlowLimitsMultiprocess",
    "TestHandover",
    "TestListPage",
    "TestMultiprocess",
    "TestPausedQueues",
    "TestQueue",
    "TestResults",
    "TestRunIf",
    "TestSchedules",
    "TestStandby",
    "TestTaskControl",
    "TestTransactionalEnqueue",
    "TestUniqueJobs",
    "TestWorkerRegistry",
]
