"""SerializationManager: picks msgpack or signed dill and enforces the security rules."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, Protocol, runtime_checkable

from omniq.models import ConfigError, InvalidTaskError, Payload, SerializationError, settings

from ._callables import (
    check_allowed,
    import_path_of,
    label,
    module_of_label,
    not_importable_reason,
    parse_path,
)
from ._callables import resolve_path as _resolve_path
from ._detector import SerializationDetector
from ._serializers import DillSerializer, MsgspecSerializer

_DEFAULT_MAX: Final = settings.MAX_PAYLOAD_BYTES

__all__ = ["SerializationManager", "SerializationSettings"]

_ENABLE_DILL_HINT = (
    "enable dill to send arbitrary Python objects (settings dill_enabled=True with a "
    "dill_secret, i.e. OMNIQ_DILL_ENABLED=1 and OMNIQ_DILL_SECRET, or "
    "SerializationManager(dill_enabled=True, secret=...))"
)


@runtime_checkable
class SerializationSettings(Protocol):
    """The settings shape :meth:`SerializationManager.from_settings` reads.

    ``omniq.config.Settings`` satisfies it; so does any object with these attributes.
    """

    @property
    def dill_enabled(self) -> bool: ...

    @property
    def dill_secret(self) -> str | bytes | None: ...

    @property
    def dill_key_id(self) -> str: ...

    @property
    def dill_previous_secrets(self) -> Mapping[str, str | bytes] | None: ...

    @property
    def max_payload_bytes(self) -> int: ...


class SerializationManager:
    """Turns task arguments, results and callables into tagged payloads and back.

    msgpack (tag ``"msgpack"``) whenever :class:`SerializationDetector` says the value
    round-trips exactly; otherwise signed dill (tag ``"dill"``) if ``dill_enabled``, else
    SerializationError. dill is off by default because unpickling runs code: with it
    enabled, only frames signed by ``secret`` (or a ``previous_secrets`` key during
    rotation) are ever unpickled. Every payload, either format, is at most ``max_size``
    bytes in both directions.
    """

    __slots__ = ("_dill", "_max_size", "_msgpack", "detector")

    def __init__(
        self,
        *,
        dill_enabled: bool = False,
        secret: str | bytes | None = None,
        key_id: str = "k1",
        previous_secrets: Mapping[str, str | bytes] | None = None,
        max_size: int = _DEFAULT_MAX,
    ) -> None:
        if type(max_size) is not int or max_size <= 0:
            raise ConfigError("max_payload_bytes", max_size, "a positive int (bytes)")
        self._max_size = max_size
        self.detector = SerializationDetector()
        self._msgpack = MsgspecSerializer()
        self._dill: DillSerializer | None = None
        if dill_enabled:
            if not secret:
                raise ConfigError(
                    "dill_secret",
                    "<empty>",
                    "a non-empty secret when dill is enabled (32+ random bytes recommended)",
                    "dill payloads are signed so a worker only unpickles what a producer made",
                )
            self._dill = DillSerializer(
                secret=secret, key_id=key_id, previous_secrets=previous_secrets, max_size=max_size
            )

    @classmethod
    def from_settings(cls, obj: SerializationSettings) -> SerializationManager:
        """Build a manager from a settings object (see :class:`SerializationSettings`)."""
        return cls(
            dill_enabled=bool(obj.dill_enabled),
            secret=obj.dill_secret or None,
            key_id=obj.dill_key_id,
            previous_secrets=obj.dill_previous_secrets or None,
            max_size=obj.max_payload_bytes,
        )

    @property
    def dill_enabled(self) -> bool:
        """Whether dill payloads may be produced and loaded."""
        return self._dill is not None

    @property
    def max_size(self) -> int:
        """Largest payload accepted, in bytes."""
        return self._max_size

    # -- values (results and anything else) -------------------------------------------

    def dumps(self, value: Any) -> Payload:
        """Serialize one value: msgpack when exact, else signed dill if enabled."""
        if self.detector.is_compatible(value):
            data = self._msgpack.dumps(value)
            if len(data) > self._max_size:
                raise self._too_big("msgpack", len(data))
            return Payload("msgpack", data)
        if self._dill is None:
            reason = self.detector.explain(value) or f"a {type(value).__name__}"
            raise SerializationError(
                f"cannot serialize without dill: {reason}; {_ENABLE_DILL_HINT}"
            )
        return Payload("dill", self._dill.dumps(value))

    def loads(self, payload: Payload) -> Any:
        """Deserialize a payload made by :meth:`dumps`; dill only if enabled and verified."""
        data = self._data_of(payload)
        fmt = payload.format
        if fmt == "msgpack":
            return self._msgpack.loads(data)
        if fmt == "dill":
            return self._require_dill().loads(data)
        raise SerializationError(f"unknown payload format {fmt!r} (known: 'msgpack', 'dill')")

    # -- task calls --------------------------------------------------------------------

    def dumps_call(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Payload:
        """Serialize a call's ``(args, kwargs)`` into one payload."""
        if self.detector.is_call_compatible(args, kwargs):
            data = self._msgpack.dumps_call(args, kwargs)
            if len(data) > self._max_size:
                raise self._too_big("msgpack", len(data))
            return Payload("msgpack", data)
        if type(args) is not tuple or type(kwargs) is not dict:
            raise SerializationError(
                f"call arguments must be a tuple and a dict, got {type(args).__name__} and "
                f"{type(kwargs).__name__}"
            )
        if self._dill is None:
            reason = self.detector.explain_call(args, kwargs) or "unsupported argument"
            raise SerializationError(
                f"cannot serialize task arguments without dill: {reason}; {_ENABLE_DILL_HINT}"
            )
        return Payload("dill", self._dill.dumps((args, kwargs)))

    def loads_call(self, payload: Payload) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """Deserialize a :meth:`dumps_call` payload; ``args`` comes back as a tuple."""
        data = self._data_of(payload)
        fmt = payload.format
        if fmt == "msgpack":
            return self._msgpack.loads_call(data)
        if fmt == "dill":
            call = self._require_dill().loads(data)
            if (
                type(call) is not tuple
                or len(call) != 2
                or type(call[0]) is not tuple
                or type(call[1]) is not dict
            ):
                raise SerializationError("dill call payload is not an (args, kwargs) pair")
            return call
        raise SerializationError(f"unknown payload format {fmt!r} (known: 'msgpack', 'dill')")

    # -- callables ---------------------------------------------------------------------

    def encode_callable(self, func: Callable[..., Any]) -> tuple[str, Payload | None]:
        """Describe ``func`` for a task: ``("module:qualname", None)`` when importable.

        Otherwise (lambda, closure, nested or ``__main__`` function, bound method,
        partial) the string is a label for display and the payload carries the callable
        as signed dill; without dill that is an InvalidTaskError saying why.
        """
        if not callable(func):
            raise InvalidTaskError(f"a task needs a callable, got {type(func).__name__}")
        path = import_path_of(func)
        if path is not None:
            return path, None
        reason = not_importable_reason(func)
        if self._dill is None:
            raise InvalidTaskError(
                f"{label(func)} cannot be sent by import path: {reason}. Define it at the "
                f"top level of an importable module, or {_ENABLE_DILL_HINT}"
            )
        try:
            payload = Payload("dill", self._dill.dumps(func))
        except SerializationError as exc:
            raise InvalidTaskError(f"{label(func)} cannot be pickled either: {exc}") from exc
        return label(func), payload

    def check_callable(
        self,
        path: str,
        payload: Payload | None = None,
        *,
        allowed_modules: Sequence[str] | None = None,
    ) -> None:
        """Every check :meth:`resolve_callable` makes before it imports or unpickles.

        An import path must be well formed, must not name ``__main__`` and its module
        must be admitted by ``allowed_modules`` (see ``check_allowed``: ``"app"`` or
        ``"app.*"`` admits ``app`` and its submodules, ``"*"`` every module outside the
        guarded standard library; ``None`` skips the list). A dill payload must be a dill
        payload, and the module its label names, when it names one other than
        ``__main__``, must be admitted too. Raises InvalidTaskError; imports nothing.
        """
        if payload is not None:
            if payload.format != "dill":
                raise InvalidTaskError(
                    f"callable payload for {path!r} has format {payload.format!r}; expected 'dill'"
                )
            module = module_of_label(path)
            if allowed_modules is not None and module is not None and module != "__main__":
                check_allowed(path, module, allowed_modules)
            return
        module, _ = parse_path(path)
        check_allowed(path, module, allowed_modules)

    def resolve_callable(
        self,
        path: str,
        payload: Payload | None = None,
        *,
        allowed_modules: Sequence[str] | None = None,
    ) -> Callable[..., Any]:
        """The callable an :meth:`encode_callable` result names.

        :meth:`check_callable` runs first, so a module outside ``allowed_modules`` is
        refused before anything is imported. With a payload the callable is loaded as
        signed dill (the signature is the trust check) and then the module it comes from
        (a partial's function's, a method's class's) must be admitted as well, unless it
        is ``__main__``. Otherwise ``path`` is imported. Resolved paths are cached.
        """
        self.check_callable(path, payload, allowed_modules=allowed_modules)
        if payload is not None:
            func = self.loads(payload)
            if not callable(func):
                raise InvalidTaskError(
                    f"callable payload for {path!r} holds a {type(func).__name__}"
                )
            if allowed_modules is not None:
                module = _origin_module(func)
                if module is not None and module != "__main__":
                    check_allowed(label(func), module, allowed_modules)
            return func  # type: ignore[no-any-return]
        return _resolve_path(path)

    # -- helpers -----------------------------------------------------------------------

    def _too_big(self, fmt: str, size: int) -> SerializationError:
        return SerializationError(
            f"{fmt} payload of {size} bytes exceeds the limit of {self._max_size} bytes"
        )

    def _data_of(self, payload: Payload) -> bytes:
        if not isinstance(payload, Payload):
            raise SerializationError(f"expected a Payload, got {type(payload).__name__}")
        data = payload.data
        if not isinstance(data, bytes | bytearray | memoryview):
            raise SerializationError(f"payload data must be bytes, not {type(data).__name__}")
        if len(data) > self._max_size:
            raise self._too_big(repr(payload.format), len(data))
        return data

    def _require_dill(self) -> DillSerializer:
        if self._dill is None:
            raise SerializationError(
                "refusing a dill payload: dill is disabled (it would be unpickled, which "
                f"runs code); {_ENABLE_DILL_HINT}"
            )
        return self._dill


def _origin_module(func: Any) -> str | None:
    """The module a loaded callable comes from (through partials), if it names one."""
    while isinstance(func, functools.partial):
        func = func.func
    module = getattr(func, "__module__", None)
    if not isinstance(module, str) or not all(p.isidentifier() for p in module.split(".")):
        return None
    return module
