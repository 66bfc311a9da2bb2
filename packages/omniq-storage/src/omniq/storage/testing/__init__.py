"""The storage conformance suite, for any backend (install ``omniq-storage[testing]``).

A backend passes the suite when every test of ``omniq.storage.testing.suite`` passes
against a ``BackendSpec`` saying how to open an isolated store of it. In a backend's
own tests::

    # conftest.py (the root one)
    pytest_plugins = ["omniq.storage.testing.plugin"]

    # test_conformance.py
    from omniq.storage.testing import BackendSpec
    from omniq.storage.testing.suite import *  # noqa: F403

    CONFORMANCE_SPECS = [BackendSpec("mydb", lambda tmp: f"mydb://{tmp}/store")]

The backend itself is found through its ``omniq.backends`` entry point (or
``omniq.storage.register_backend``). Importing this package needs pytest.
"""

from __future__ import annotations

import pytest as _pytest  # the suite's one hard requirement: fail early without it

from ._specs import (
    SPECS,
    BackendSpec,
    CallerTx,
    builtin_specs,
    ids_with,
    register_builtin_specs,
    register_spec,
    register_specs,
)
from .helpers import NOOP, es, noop, poll_until, rs, ss, task, tq

__all__ = [
    "NOOP",
    "SPECS",
    "BackendSpec",
    "CallerTx",
    "builtin_specs",
    "es",
    "ids_with",
    "noop",
    "poll_until",
    "register_builtin_specs",
    "register_spec",
    "register_specs",
    "rs",
    "ss",
    "task",
    "tq",
]

del _pytest
