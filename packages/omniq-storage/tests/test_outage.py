"""The outage tracker: one line when the server is lost, reminders at most every
``remind_every`` seconds, one line on the way back; URLs and errors redacted."""

from __future__ import annotations

import logging

import pytest

from omniq.storage._outage import Outage

SECRET = "Tr4cker-pw"
URL = f"redis://:{SECRET}@cache:6379/0"


def _messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "omniq.test.outage"]


def test_one_line_down_one_line_up(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    o = Outage("redis", URL, logging.getLogger("omniq.test.outage"), remind_every=3600)
    o.ok()  # up and staying up: nothing
    assert not o.down and _messages(caplog) == []
    for _ in range(50):
        o.failed(ConnectionRefusedError(111, f"refused by {URL}"))
    assert o.down and o.failures == 50
    o.ok()
    o.ok()
    msgs = _messages(caplog)
    assert len(msgs) == 2, msgs
    assert msgs[0].startswith("lost connection to redis at redis://:***@cache:6379/0: ")
    assert "ConnectionRefusedError" in msgs[0]
    assert msgs[1].startswith("reconnected to redis at redis://:***@cache:6379/0 after 50 ")
    assert SECRET not in caplog.text
    assert not any(r.exc_info for r in caplog.records)
    assert not o.down and o.failures == 0


def test_reminders_are_rate_limited(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    log = logging.getLogger("omniq.test.outage")
    every = Outage("nats", "nats://h:4222", log, remind_every=0.0)
    for _ in range(3):
        every.failed("disconnected")
    msgs = _messages(caplog)
    assert len(msgs) == 3 and "still unreachable after 3 failed attempts" in msgs[2]

    caplog.clear()
    rare = Outage("nats", "nats://h:4222", log, remind_every=3600)
    for _ in range(1000):
        rare.failed(TimeoutError())
    assert len(_messages(caplog)) == 1  # the first one only: the next is an hour away


def test_a_second_outage_is_reported_again(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    o = Outage("postgresql", "postgresql://u@db/app", logging.getLogger("omniq.test.outage"))
    for _ in range(2):
        o.failed(OSError("boom"))
        o.ok()
    msgs = _messages(caplog)
    assert [m.split(" ")[0] for m in msgs] == ["lost", "reconnected", "lost", "reconnected"]
    assert "after 1 failed attempts" in msgs[1]
