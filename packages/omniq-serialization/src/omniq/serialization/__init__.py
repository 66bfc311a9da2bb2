"""OmniQ serialization: msgpack (msgspec) first, signed dill as an opt-in fallback.

``SerializationManager`` turns task arguments, results and callables into
``omniq.models.Payload`` values whose format tag (``"msgpack"`` or ``"dill"``) travels
with the bytes. dill is off by default; when enabled, its payloads are HMAC-SHA256 signed
and verified before anything is unpickled. Importing this package does not import dill.
"""

from __future__ import annotations

from omniq.models.lowlevel import publish

from ._detector import INT_MAX, INT_MIN, SerializationDetector
from ._manager import SerializationManager, SerializationSettings
from ._serializers import DILL_MAGIC, DILL_VERSION, DillSerializer, MsgspecSerializer

__all__ = [
    "DILL_MAGIC",
    "DILL_VERSION",
    "INT_MAX",
    "INT_MIN",
    "DillSerializer",
    "MsgspecSerializer",
    "SerializationDetector",
    "SerializationManager",
    "SerializationSettings",
]

# Show public names as omniq.serialization.X so the private modules can move freely.
publish(globals())
del publish
