"""The two byte-level serializers: msgpack (msgspec) and signed dill.

Neither decides *which* format a value should use; :class:`SerializationManager` does.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from collections.abc import Mapping
from typing import Any, ClassVar, Final

import msgspec

from omniq.models import ConfigError, SerializationError, settings

_DEFAULT_MAX: Final = settings.MAX_PAYLOAD_BYTES

__all__ = [
    "DILL_MAGIC",
    "DILL_VERSION",
    "DillSerializer",
    "MsgspecSerializer",
]

DILL_MAGIC: Final = b"OQDL"
"""First four bytes of every signed dill frame."""
DILL_VERSION: Final = 1
"""Frame layout version, the byte after the magic."""

_MAC_SIZE: Final = hashlib.sha256().digest_size  # 32
_HEADER: Final = struct.Struct(">4sBB")  # magic, version, key id length
_MIN_FRAME: Final = _HEADER.size + 1 + _MAC_SIZE  # a key id has at least one byte


class MsgspecSerializer:
    """msgpack via msgspec with reused Encoder/Decoder instances (the fast path).

    It encodes whatever msgspec can, so it does not itself guarantee an exact round trip;
    :class:`SerializationDetector` decides that before the manager picks this format.
    """

    format: ClassVar[str] = "msgpack"

    __slots__ = ("_call_decoder", "_decoder", "_encoder")

    def __init__(self) -> None:
        self._encoder = msgspec.msgpack.Encoder()
        self._decoder = msgspec.msgpack.Decoder()
        self._call_decoder = msgspec.msgpack.Decoder(tuple[tuple[Any, ...], dict[str, Any]])

    def dumps(self, value: Any) -> bytes:
        """Encode ``value`` to msgpack bytes."""
        try:
            return self._encoder.encode(value)
        except (msgspec.EncodeError, TypeError, OverflowError, ValueError) as exc:
            raise SerializationError(
                f"msgpack cannot encode {type(value).__name__}: {exc}"
            ) from exc

    def loads(self, data: bytes) -> Any:
        """Decode msgpack bytes into plain Python values (untyped)."""
        try:
            return self._decoder.decode(data)
        except (msgspec.DecodeError, TypeError, ValueError) as exc:
            raise SerializationError(f"corrupt msgpack payload: {exc}") from exc

    def dumps_call(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bytes:
        """Encode a call's arguments as the two-element array ``[args, kwargs]``."""
        try:
            return self._encoder.encode((args, kwargs))
        except (msgspec.EncodeError, TypeError, OverflowError, ValueError) as exc:
            raise SerializationError(f"msgpack cannot encode call arguments: {exc}") from exc

    def loads_call(self, data: bytes) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """Decode ``[args, kwargs]``; ``args`` comes back as a tuple."""
        try:
            return self._call_decoder.decode(data)
        except (msgspec.DecodeError, TypeError, ValueError) as exc:
            raise SerializationError(f"corrupt msgpack call payload: {exc}") from exc


def _secret_bytes(name: str, secret: str | bytes | None) -> bytes:
    if isinstance(secret, str):
        secret = secret.encode()
    if not isinstance(secret, bytes) or not secret:
        raise ConfigError(
            name,
            "<empty>" if not secret else "<hidden>",
            "a non-empty secret (str or bytes; 32+ random bytes recommended)",
            "dill payloads must be signed",
        )
    return secret


def _key_id_bytes(key_id: str) -> bytes:
    raw = key_id.encode() if isinstance(key_id, str) else b""
    if not 1 <= len(raw) <= 255:
        raise ConfigError("dill_key_id", key_id, "a str of 1 to 255 UTF-8 bytes")
    return raw


class DillSerializer:
    """dill pickles framed, signed and verified so that only trusted bytes are unpickled.

    Frame (all of it at most ``max_size`` bytes)::

        b"OQDL" | version (1 byte, =1) | key-id length n (1 byte) | key id (n bytes, UTF-8)
        | HMAC-SHA256 (32 bytes) | dill pickle

    The MAC covers everything before it plus the pickle (header || pickle), keyed by the
    secret named by the key id. New payloads use ``key_id``/``secret``; payloads signed
    with a key in ``previous_secrets`` still verify, which is how keys rotate. Loading
    checks size, magic, version, key id and MAC (``hmac.compare_digest``) before dill is
    even imported; any failure raises SerializationError and nothing is unpickled.
    """

    format: ClassVar[str] = "dill"

    __slots__ = ("_key_id", "_keys", "_secret", "max_size")

    def __init__(
        self,
        *,
        secret: str | bytes,
        key_id: str = "k1",
        previous_secrets: Mapping[str, str | bytes] | None = None,
        max_size: int = _DEFAULT_MAX,
    ) -> None:
        self._secret = _secret_bytes("dill_secret", secret)
        self._key_id = _key_id_bytes(key_id)
        keys: dict[bytes, bytes] = {}
        for old_id, old_secret in (previous_secrets or {}).items():
            keys[_key_id_bytes(old_id)] = _secret_bytes(
                f"dill_previous_secrets[{old_id!r}]", old_secret
            )
        keys[self._key_id] = self._secret  # the active key wins over a stale entry
        self._keys = keys
        self.max_size = max_size

    @property
    def key_id(self) -> str:
        """Id of the key new payloads are signed with."""
        return self._key_id.decode()

    def sign(self, pickled: bytes) -> bytes:
        """Frame and sign already-pickled bytes with the active key."""
        header = _HEADER.pack(DILL_MAGIC, DILL_VERSION, len(self._key_id)) + self._key_id
        mac = hmac.new(self._secret, header + pickled, hashlib.sha256).digest()
        return header + mac + pickled

    def verify(self, data: bytes) -> bytes:
        """Check a frame and return its pickle bytes, without unpickling anything."""
        size = len(data)
        if size > self.max_size:
            raise SerializationError(
                f"dill payload of {size} bytes exceeds the limit of {self.max_size} bytes"
            )
        if size < _MIN_FRAME:
            raise SerializationError(f"dill payload truncated ({size} bytes): refused")
        magic, version, kid_len = _HEADER.unpack_from(data)
        if magic != DILL_MAGIC:
            raise SerializationError(
                "dill payload is not a signed OmniQ frame (bad magic): refused; "
                "unsigned pickles are never loaded"
            )
        if version != DILL_VERSION:
            raise SerializationError(f"unsupported dill frame version {version}: refused")
        body_start = _HEADER.size + kid_len + _MAC_SIZE
        if kid_len == 0 or size < body_start:
            raise SerializationError(f"dill payload truncated ({size} bytes): refused")
        kid = bytes(data[_HEADER.size : _HEADER.size + kid_len])
        secret = self._keys.get(kid)
        if secret is None:
            raise SerializationError(
                f"dill payload signed with unknown key id {kid!r}: refused (add it to "
                "dill_previous_secrets while rotating)"
            )
        header_end = _HEADER.size + kid_len
        mac = data[header_end:body_start]
        pickled = bytes(data[body_start:])
        expected = hmac.new(secret, bytes(data[:header_end]) + pickled, hashlib.sha256).digest()
        if not hmac.compare_digest(expected, mac):
            raise SerializationError(
                "dill payload signature mismatch (tampered, or signed with another secret): refused"
            )
        return pickled

    def dumps(self, value: Any) -> bytes:
        """Pickle ``value`` with dill and return a signed frame."""
        import dill  # lazy: most deployments never need it

        try:
            pickled = dill.dumps(value)
        except Exception as exc:  # dill raises anything a __reduce__ can raise
            raise SerializationError(
                f"dill cannot serialize {type(value).__name__}: {exc}"
            ) from exc
        frame = self.sign(pickled)
        if len(frame) > self.max_size:
            raise SerializationError(
                f"dill payload of {len(frame)} bytes exceeds the limit of {self.max_size} bytes"
            )
        return frame

    def loads(self, data: bytes) -> Any:
        """Verify a signed frame, then unpickle it."""
        pickled = self.verify(data)
        import dill

        try:
            return dill.loads(pickled)
        except Exception as exc:  # e.g. a class the worker cannot import
            raise SerializationError(f"cannot unpickle verified dill payload: {exc}") from exc
