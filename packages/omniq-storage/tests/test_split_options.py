"""split_options hands the driver the URL it was given, less OmniQ's own parameters."""

from __future__ import annotations

import pytest

from omniq.storage._remote import split_options


@pytest.mark.parametrize(
    ("url", "driver_url"),
    [
        ("redis://127.0.0.1:6379/0?prefix=a:&db=1", "redis://127.0.0.1:6379/0?db=1"),
        ("unix:///tmp/redis.sock?db=0&prefix=a:", "unix:///tmp/redis.sock?db=0"),
        ("unix:///tmp/redis.sock?prefix=a:", "unix:///tmp/redis.sock"),
        ("postgresql:///test?prefix=a:", "postgresql:///test"),
    ],
)
def test_the_driver_url_keeps_its_form(url: str, driver_url: str) -> None:
    cleaned, mine = split_options(url, ["prefix"])
    assert cleaned == driver_url
    assert mine == {"prefix": "a:"}


def test_split_hosts_gives_one_url_per_server() -> None:
    from omniq.storage._remote import split_hosts

    assert split_hosts("nats://127.0.0.1:4222,127.0.0.1:4223,127.0.0.1:4224") == [
        "nats://127.0.0.1:4222",
        "nats://127.0.0.1:4223",
        "nats://127.0.0.1:4224",
    ]
    # credentials, path and query of the first item go to every server
    assert split_hosts("nats://u:p@a:1,b:2/x?q=1") == [
        "nats://u:p@a:1/x?q=1",
        "nats://u:p@b:2/x?q=1",
    ]
    assert split_hosts("nats://a:1,nats://b:2") == ["nats://a:1", "nats://b:2"]
    assert split_hosts("nats://a:1?replicas=3") == ["nats://a:1?replicas=3"]
