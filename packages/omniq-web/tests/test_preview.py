"""Argument previews decode msgpack as data and never deserialize anything else."""

from __future__ import annotations

import pickle

import msgspec
import pytest

from omniq.models import Payload
from omniq.web._preview import LIMIT, preview


class Boom:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (print, ("unpickled!",))


def test_msgpack_args_and_kwargs_are_shown_as_json() -> None:
    data = msgspec.msgpack.encode([[1, "a", None], {"x": 2.5}])
    assert preview(Payload("msgpack", data)) == 'args: [1, "a", null]\nkwargs: {"x": 2.5}'
    assert preview(Payload("msgpack", msgspec.msgpack.encode([[], {}]))) == "args: []"
    assert preview(Payload("msgpack", msgspec.msgpack.encode(42))) == "42"
    assert preview(None) == ""


def test_binary_extension_and_huge_values_are_summarised() -> None:
    blob = msgspec.msgpack.encode([[b"\x00" * 10, msgspec.msgpack.Ext(5, b"abc")], {}])
    assert preview(Payload("msgpack", blob)) == (
        'args: ["<binary 10 bytes>", "<extension type 5, 3 bytes>"]'
    )
    big = preview(Payload("msgpack", msgspec.msgpack.encode([["x" * 10_000], {}])))
    assert len(big) < LIMIT + 100 and big.endswith("more characters)")
    assert preview(Payload("msgpack", b"\xc1")) == "<binary 1 bytes, not valid msgpack>"


def test_pickled_payloads_are_never_loaded(capsys: pytest.CaptureFixture[str]) -> None:
    data = pickle.dumps(Boom())
    assert preview(Payload("dill", data)) == f"<binary {len(data)} bytes>"
    assert preview(Payload("pickle", data)) == f"<binary {len(data)} bytes>"
    assert "unpickled" not in capsys.readouterr().out
