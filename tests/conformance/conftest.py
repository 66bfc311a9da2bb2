"""Load the conformance suite's pytest plugin for this directory (its hooks and fixtures
imported here, as ``pytest_plugins`` is for a root conftest only)."""

from omniq.storage.testing.plugin import *  # noqa: F403
