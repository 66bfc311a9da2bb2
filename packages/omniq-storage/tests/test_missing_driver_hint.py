"""A server backend whose driver is missing names the driver and what installs it."""

from __future__ import annotations

import subprocess
import sys

import pytest

OPEN_WITHOUT = """
import sys
for name in sys.argv[2].split(','):
    sys.modules[name] = None  # the import of the driver fails as if it were not installed
from omniq.models import MissingExtraError
from omniq.storage import open_storage
try:
    open_storage(sys.argv[1])
except MissingExtraError as exc:
    print(exc)
else:
    raise SystemExit('opened without its driver')
"""


@pytest.mark.parametrize(
    ("url", "blocked", "driver", "extra"),
    [
        ("postgresql://127.0.0.1/test", "asyncpg", "asyncpg", "postgres"),
        ("redis://127.0.0.1:6379/0", "redis", "redis", "redis"),
        ("nats://127.0.0.1:4222", "nats", "nats", "nats"),
    ],
)
def test_message_names_the_driver_the_extra_and_the_umbrella(
    url: str, blocked: str, driver: str, extra: str
) -> None:
    out = subprocess.run(
        [sys.executable, "-c", OPEN_WITHOUT, url, blocked],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    scheme = url.split(":", 1)[0]
    assert out.startswith(f"the {scheme}:// backend needs the driver {driver}: "), out
    assert f"pip install 'omniq-storage[{extra}]'" in out, out
    assert "the omniq distribution installs every driver" in out, out
    assert "?" not in out, out
