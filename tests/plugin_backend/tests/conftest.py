"""The conformance suite's pytest plugin (in a root conftest,
``pytest_plugins = ["omniq.storage.testing.plugin"]`` does the same)."""

from omniq.storage.testing.plugin import *  # noqa: F403
