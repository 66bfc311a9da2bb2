"""Signed dill: nothing unverified is ever unpickled; rotation; lazy import of dill."""

from __future__ import annotations

import hashlib
import hmac
import pickle
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from typing import Any

import dill
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from omniq.models import Payload, SerializationError
from omniq.serialization import (
    DILL_MAGIC,
    DILL_VERSION,
    DillSerializer,
    SerializationManager,
)

SECRET = "test-secret-0123456789abcdef"
CALLS: list[str] = []
"""Appended to by ``record`` whenever a Tripwire is unpickled.

The spy fixture is function-scoped on purpose under hypothesis: it must see *no* call
across all generated examples, so sharing it between them only makes the check stricter.
"""


def record(tag: str) -> str:
    CALLS.append(tag)
    return tag


class Tripwire:
    """Unpickling this calls ``record``: a stand-in for a malicious ``__reduce__``."""

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (record, ("unpickled",))


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[bytes]]:
    """Record every call to dill.loads / pickle.loads while the test runs."""
    seen: list[bytes] = []
    real_dill, real_pickle = dill.loads, pickle.loads

    def dill_loads(data: bytes, *a: Any, **k: Any) -> Any:
        seen.append(data)
        return real_dill(data, *a, **k)

    def pickle_loads(data: bytes, *a: Any, **k: Any) -> Any:
        seen.append(data)
        return real_pickle(data, *a, **k)

    monkeypatch.setattr(dill, "loads", dill_loads)
    monkeypatch.setattr(pickle, "loads", pickle_loads)
    CALLS.clear()
    yield seen
    CALLS.clear()


def manager(**kw: Any) -> SerializationManager:
    kw.setdefault("secret", SECRET)
    return SerializationManager(dill_enabled=True, **kw)


def tripwire_payload() -> Payload:
    payload = manager().dumps(Tripwire())
    assert payload.format == "dill"
    return payload


def test_tripwire_fires_when_genuine(spy: list[bytes]) -> None:
    """The tripwire works, so its silence in the other tests means something."""
    assert manager().loads(tripwire_payload()) == "unpickled"
    assert CALLS == ["unpickled"] and len(spy) == 1


def assert_refused(m: SerializationManager, payload: Payload, spy: list[bytes]) -> None:
    with pytest.raises(SerializationError):
        m.loads(payload)
    with pytest.raises(SerializationError):
        m.loads_call(payload)
    assert CALLS == [] and spy == []


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_flipping_any_byte_is_refused(spy: list[bytes], data: st.DataObject) -> None:
    raw = tripwire_payload().data
    index = data.draw(st.integers(0, len(raw) - 1))
    mask = data.draw(st.integers(1, 255))
    tampered = raw[:index] + bytes([raw[index] ^ mask]) + raw[index + 1 :]
    assert_refused(manager(previous_secrets={"k0": "other"}), Payload("dill", tampered), spy)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_truncating_anywhere_is_refused(spy: list[bytes], data: st.DataObject) -> None:
    raw = tripwire_payload().data
    cut = data.draw(st.integers(0, len(raw) - 1))
    assert_refused(manager(), Payload("dill", raw[:cut]), spy)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(extra=st.binary(min_size=1, max_size=64))
def test_appending_bytes_is_refused(spy: list[bytes], extra: bytes) -> None:
    assert_refused(manager(), Payload("dill", tripwire_payload().data + extra), spy)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(extra=st.binary(min_size=1, max_size=64))
def test_appending_a_second_pickle_is_refused(spy: list[bytes], extra: bytes) -> None:
    smuggled = tripwire_payload().data + dill.dumps(Tripwire()) + extra
    assert_refused(manager(), Payload("dill", smuggled), spy)


def test_raw_pickle_is_refused(spy: list[bytes]) -> None:
    for blob in (pickle.dumps(Tripwire()), dill.dumps(Tripwire()), b""):
        assert_refused(manager(), Payload("dill", blob), spy)
    with pytest.raises(SerializationError, match="bad magic"):
        manager().loads(Payload("dill", pickle.dumps(Tripwire())))


def test_frame_signed_with_another_secret_is_refused(spy: list[bytes]) -> None:
    forged = manager(secret="attacker-secret").dumps(Tripwire())
    with pytest.raises(SerializationError, match="signature mismatch"):
        manager().loads(forged)
    assert CALLS == [] and spy == []


def test_forged_frame_with_unknown_key_id_is_refused(spy: list[bytes]) -> None:
    body = dill.dumps(Tripwire())
    header = DILL_MAGIC + bytes([DILL_VERSION, 3]) + b"zzz"
    mac = hmac.new(b"guess", header + body, hashlib.sha256).digest()
    with pytest.raises(SerializationError, match="unknown key id b'zzz'"):
        manager().loads(Payload("dill", header + mac + body))
    assert CALLS == [] and spy == []


def test_unsupported_version_is_refused(spy: list[bytes]) -> None:
    raw = bytearray(tripwire_payload().data)
    raw[4] = 2
    with pytest.raises(SerializationError, match="version 2"):
        manager().loads(Payload("dill", bytes(raw)))
    assert CALLS == [] and spy == []


def test_dill_disabled_refuses_dill_payloads(spy: list[bytes]) -> None:
    payload = tripwire_payload()
    plain = SerializationManager()
    with pytest.raises(SerializationError, match="dill is disabled"):
        plain.loads(payload)
    with pytest.raises(SerializationError, match="dill is disabled"):
        plain.loads_call(payload)
    with pytest.raises(SerializationError, match="dill is disabled"):
        plain.resolve_callable("x:y", payload)
    assert CALLS == [] and spy == []


def test_oversized_dill_payload_is_refused_before_verification(spy: list[bytes]) -> None:
    payload = tripwire_payload()
    small = manager(max_size=len(payload.data) - 1)
    with pytest.raises(SerializationError, match="exceeds the limit"):
        small.loads(payload)
    serializer = DillSerializer(secret=SECRET, max_size=len(payload.data) - 1)
    with pytest.raises(SerializationError, match="exceeds the limit"):
        serializer.loads(payload.data)
    with pytest.raises(SerializationError, match="exceeds the limit"):
        serializer.dumps(Tripwire())
    assert CALLS == [] and spy == []


def test_rotation(spy: list[bytes]) -> None:
    old = manager(secret="old-secret", key_id="2025")
    payload = old.dumps({"a", "b"})
    rotated = manager(secret="new-secret", key_id="2026", previous_secrets={"2025": "old-secret"})
    assert rotated.loads(payload) == {"a", "b"}
    fresh = rotated.dumps({"c"})
    assert fresh.data[6:10] == b"2026"
    assert rotated.loads(fresh) == {"c"}
    spy.clear()
    retired = manager(secret="new-secret", key_id="2026")
    with pytest.raises(SerializationError, match="unknown key id b'2025'"):
        retired.loads(payload)
    wrong_old = manager(secret="new-secret", key_id="2026", previous_secrets={"2025": "nope"})
    with pytest.raises(SerializationError, match="signature mismatch"):
        wrong_old.loads(payload)
    assert spy == []


def test_frame_layout() -> None:
    serializer = DillSerializer(secret=b"k", key_id="key-7")
    frame = serializer.dumps([1, 2])
    kid_len = frame[5]
    assert frame[:4] == DILL_MAGIC and frame[4] == DILL_VERSION
    assert frame[6 : 6 + kid_len] == b"key-7"
    header_end = 6 + kid_len
    mac, body = frame[header_end : header_end + 32], frame[header_end + 32 :]
    assert mac == hmac.new(b"k", frame[:header_end] + body, hashlib.sha256).digest()
    assert dill.loads(body) == [1, 2]
    assert serializer.verify(frame) == body
    assert serializer.key_id == "key-7"


def test_unpicklable_value_is_a_serialization_error() -> None:
    with pytest.raises(SerializationError, match="dill cannot serialize"):
        manager().dumps(x for x in range(3))


def test_importing_the_package_does_not_import_dill() -> None:
    code = textwrap.dedent(
        r"""
        import sys
        import omniq.serialization as s
        assert "dill" not in sys.modules, "import"
        m = s.SerializationManager(dill_enabled=True, secret="x")
        p = m.dumps_call((1, "a", [2.5]), {"k": {"n": None}})
        assert m.loads_call(p) == ((1, "a", [2.5]), {"k": {"n": None}})
        assert m.encode_callable(len) == ("builtins:len", None)
        assert m.resolve_callable("json:dumps") is __import__("json").dumps
        from omniq.models import Payload, SerializationError
        forged = Payload("dill", b"OQDL\x01\x02k1" + bytes(32) + b"\x80\x04N.")
        for refuser in (s.SerializationManager(), m):  # disabled, then bad signature
            try:
                refuser.loads(forged)
            except SerializationError:
                pass
            else:
                raise AssertionError("forged payload accepted")
        assert "dill" not in sys.modules, "msgpack use and refusals"
        m.dumps({1})
        assert "dill" in sys.modules
        print("ok")
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
