"""Decide, cheaply, whether a value survives a msgpack round trip unchanged."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, Final

__all__ = ["INT_MAX", "INT_MIN", "SerializationDetector"]

INT_MIN: Final = -(2**63)
"""Smallest int msgpack can carry (int64)."""
INT_MAX: Final = 2**64 - 1
"""Largest int msgpack can carry (uint64)."""

_SCALARS: Final[frozenset[type]] = frozenset({str, bool, float, bytes, type(None)})


class SerializationDetector:
    """Tells whether a value round-trips exactly through msgspec msgpack (untyped decode).

    Compatible: ``None``, ``bool``, ``int`` in [-2**63, 2**64-1], ``float``, ``str``,
    ``bytes``, ``list``, ``dict`` with ``str`` or ``int`` keys, timezone-aware
    ``datetime`` (it comes back in UTC, equal to the original instant), nested to at most
    ``max_depth`` containers. Types are matched exactly, so subclasses (``IntEnum``,
    ``OrderedDict``, ``StrEnum``...) are *not* compatible: they would come back as their
    base type. Everything else (sets, naive datetimes, big ints, custom classes,
    functions, bytearray) is not compatible and needs dill.

    Tuples: with ``allow_tuples=True`` (the default) tuples are compatible but come back
    as lists, as with JSON/msgpack in every peer library; pass ``allow_tuples=False`` to
    send them through dill instead. The top-level positional arguments of a call are
    always a tuple by construction and are restored as one (see
    :meth:`is_call_compatible`).

    The walk is iterative (no recursion limit to hit) and allocation-light, because it
    runs on every enqueue and every result.
    """

    __slots__ = ("allow_tuples", "max_depth")

    def __init__(self, *, max_depth: int = 128, allow_tuples: bool = True) -> None:
        self.max_depth = max_depth
        self.allow_tuples = allow_tuples

    def is_compatible(self, value: Any) -> bool:
        """True if ``value`` decodes back to an equal value of the same types."""
        t = type(value)
        if t in _SCALARS:
            return True
        if t is int:
            return bool(INT_MIN <= value <= INT_MAX)
        return self._walk([(value, 0)])

    def is_call_compatible(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
        """True if a call's ``(args, kwargs)`` can travel as msgpack.

        ``args`` itself must be a tuple and ``kwargs`` a dict with str keys; their
        elements follow :meth:`is_compatible`.
        """
        if type(args) is not tuple or type(kwargs) is not dict:
            return False
        scalars, lo, hi = _SCALARS, INT_MIN, INT_MAX
        stack: list[tuple[Any, int]] | None = None
        for key in kwargs:
            if type(key) is not str:
                return False
        # Scalars and ints are settled inline; only containers go to the walk.
        for values in (args, kwargs.values()):
            for item in values:
                t = type(item)
                if t in scalars:
                    continue
                if t is int:
                    if lo <= item <= hi:
                        continue
                    return False
                if stack is None:
                    stack = [(item, 1)]
                else:
                    stack.append((item, 1))
        return stack is None or self._walk(stack)

    def _walk(self, stack: list[tuple[Any, int]]) -> bool:
        max_depth = self.max_depth
        tuples_ok = self.allow_tuples
        pop = stack.pop
        push = stack.append
        scalars, lo, hi = _SCALARS, INT_MIN, INT_MAX
        while stack:
            obj, depth = pop()
            t = type(obj)
            if t in scalars:
                continue
            if t is int:
                if lo <= obj <= hi:
                    continue
                return False
            if t is list or (t is tuple and tuples_ok):
                if depth >= max_depth:
                    return False
                depth += 1
                for item in obj:
                    ti = type(item)
                    if ti in scalars:
                        continue
                    if ti is int:
                        if lo <= item <= hi:
                            continue
                        return False
                    push((item, depth))
                continue
            if t is dict:
                if depth >= max_depth:
                    return False
                depth += 1
                for key, item in obj.items():
                    tk = type(key)
                    if tk is not str and not (tk is int and lo <= key <= hi):
                        return False
                    ti = type(item)
                    if ti in scalars:
                        continue
                    if ti is int:
                        if lo <= item <= hi:
                            continue
                        return False
                    push((item, depth))
                continue
            if t is datetime and _aware_in_range(obj):
                continue
            return False
        return True

    def explain(self, value: Any, where: str = "value") -> str | None:
        """Describe the first part of ``value`` that is not compatible, or None if none is.

        Slow path for error messages: names the offending type and where it sits
        (``value['a'][2]``).
        """
        return self._explain(value, where, 0)

    def explain_call(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str | None:
        """Like :meth:`explain` for a call's arguments (``args[0]``, ``kwargs['x']``)."""
        if type(args) is not tuple:
            return f"args is a {_tname(args)}, not a tuple"
        if type(kwargs) is not dict:
            return f"kwargs is a {_tname(kwargs)}, not a dict"
        for i, item in enumerate(args):
            found = self._explain(item, f"args[{i}]", 1)
            if found:
                return found
        for key, item in kwargs.items():
            if type(key) is not str:
                return f"kwargs has a key of type {_tname(key)}; keyword names must be str"
            found = self._explain(item, f"kwargs[{key!r}]", 1)
            if found:
                return found
        return None

    def _explain(self, obj: Any, where: str, depth: int) -> str | None:
        t = type(obj)
        if t in _SCALARS:
            return None
        if t is int:
            if INT_MIN <= obj <= INT_MAX:
                return None
            return f"{where} is an int outside msgpack's 64-bit range"
        if t is datetime:
            if _aware_in_range(obj):
                return None
            if obj.utcoffset() is None:
                return f"{where} is a naive datetime (no tzinfo); msgpack needs an aware one"
            return f"{where} is a datetime whose UTC instant is outside years 1-9999"
        if t is list or (t is tuple and self.allow_tuples) or t is dict:
            if depth >= self.max_depth:
                return f"{where} is nested deeper than {self.max_depth} containers"
            items: Iterable[tuple[Any, Any]]
            if t is dict:
                for key in obj:
                    tk = type(key)
                    if tk is not str and not (tk is int and INT_MIN <= key <= INT_MAX):
                        return f"{where} has a dict key of type {_tname(key)} (only str/int)"
                items = obj.items()
            else:
                items = enumerate(obj)
            for key, item in items:
                found = self._explain(item, f"{where}[{key!r}]", depth + 1)
                if found:
                    return found
            return None
        return f"{where} is of type {_tname(obj)}"


def _aware_in_range(value: datetime) -> bool:
    """Aware, and its UTC instant fits in years 1-9999 (msgpack timestamps are UTC)."""
    if value.utcoffset() is None:
        return False
    if value.year in (1, 9999):
        try:
            value.astimezone(UTC)
        except OverflowError:
            return False
    return True


def _tname(obj: object) -> str:
    t = type(obj)
    return t.__qualname__ if t.__module__ == "builtins" else f"{t.__module__}.{t.__qualname__}"
