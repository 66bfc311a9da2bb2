"""The application under test: task functions and the code that enqueues them."""

from __future__ import annotations

import threading

from omniq.core import OmniQ

SENT: list[str] = []


def send_email(to: str, subject: str = "hello") -> str:
    SENT.append(to)
    return f"sent {subject!r} to {to}"


def sign_up(oq: OmniQ, email: str) -> None:
    """What a web handler would do: enqueue the welcome mail."""
    oq.enqueue_sync(send_email, (email,), {"subject": "welcome"}, queue="mail")


class Handle:
    def __init__(self) -> None:
        self.lock = threading.Lock()


def open_handle() -> Handle:
    """Returns what no queue can carry back (msgpack/JSON cannot encode it)."""
    return Handle()
