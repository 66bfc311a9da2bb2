"""Import paths for task callables: check them, build them, resolve them (cached)."""

from __future__ import annotations

import functools
import importlib
import inspect
import sys
from collections.abc import Callable, Sequence
from typing import Any

from omniq.models import InvalidTaskError

__all__ = [
    "check_allowed",
    "import_path_of",
    "label",
    "not_importable_reason",
    "parse_path",
    "resolve_path",
]


def parse_path(path: str) -> tuple[str, str]:
    """Split and validate ``"package.module:Qual.name"``; InvalidTaskError if malformed.

    Qualname parts may not be dunders, so a path cannot walk into ``__globals__``,
    ``__class__`` and the like.
    """
    if not isinstance(path, str):
        raise InvalidTaskError(f"task import path must be a str, not {type(path).__name__}")
    module, sep, qualname = path.partition(":")
    if not sep or not module or not qualname:
        raise InvalidTaskError(f"invalid task import path {path!r}: expected 'module:qualname'")
    if not all(part.isidentifier() for part in module.split(".")):
        raise InvalidTaskError(f"invalid module name in task import path {path!r}")
    for part in qualname.split("."):
        if not part.isidentifier():
            raise InvalidTaskError(f"invalid qualname in task import path {path!r}")
        if part.startswith("__") and part.endswith("__"):
            raise InvalidTaskError(
                f"task import path {path!r} may not reach dunder attribute {part!r}"
            )
    if module == "__main__":
        raise InvalidTaskError(
            f"task import path {path!r} names __main__, which a worker cannot import; "
            "move the function into an importable module (or enable dill)"
        )
    return module, qualname


def check_allowed(path: str, module: str, allowed_modules: Sequence[str] | None) -> None:
    """Refuse ``module`` unless it is, or sits under, one of ``allowed_modules``.

    A prefix ``"app"`` allows ``app`` and ``app.tasks`` but not ``apple``. Nothing is
    imported before this check passes.
    """
    if allowed_modules is None:
        return
    if isinstance(allowed_modules, str):
        allowed_modules = (allowed_modules,)
    for raw in allowed_modules:
        prefix = raw.rstrip(".")
        if module == prefix or module.startswith(prefix + "."):
            return
    raise InvalidTaskError(
        f"task import path {path!r} is outside the allowed modules "
        f"{list(allowed_modules)!r}: refused without importing {module!r}"
    )


@functools.lru_cache(maxsize=4096)
def resolve_path(path: str) -> Callable[..., Any]:
    """Import ``"module:qualname"`` and return the callable (cached: worker hot path)."""
    module_name, qualname = parse_path(path)
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise InvalidTaskError(f"cannot import module {module_name!r} for {path!r}: {exc}") from exc
    except Exception as exc:  # the module's own code failed while importing
        raise InvalidTaskError(
            f"importing module {module_name!r} for {path!r} failed: {exc!r}"
        ) from exc
    for part in qualname.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError as exc:
            raise InvalidTaskError(
                f"module {module_name!r} has no attribute {qualname!r} (task path {path!r})"
            ) from exc
    if not callable(obj):
        raise InvalidTaskError(
            f"task import path {path!r} names a {type(obj).__name__}, not a callable"
        )
    return obj  # type: ignore[no-any-return]


def label(func: Any) -> str:
    """``module:qualname`` of any callable, for display (may not be importable)."""
    module = getattr(func, "__module__", None) or "?"
    qualname = getattr(func, "__qualname__", None) or type(func).__qualname__
    return f"{module}:{qualname}"


def import_path_of(func: Any) -> str | None:
    """The ``"module:qualname"`` that resolves back to ``func``, or None if there is none.

    Only modules already in ``sys.modules`` are consulted (``func`` came from one), so
    this never imports anything.
    """
    module = getattr(func, "__module__", None)
    qualname = getattr(func, "__qualname__", None)
    if not isinstance(module, str) or not isinstance(qualname, str):
        return None
    if module == "__main__" or "<" in qualname:
        return None
    obj: Any = sys.modules.get(module)
    if obj is None:
        return None
    for part in qualname.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            return None
    if obj is func or (
        inspect.ismethod(func)
        and inspect.ismethod(obj)
        and obj.__self__ is func.__self__
        and obj.__func__ is func.__func__
    ):
        path = f"{module}:{qualname}"
        try:
            parse_path(path)
        except InvalidTaskError:
            return None
        return path
    return None


def not_importable_reason(func: Any) -> str:
    """Why :func:`import_path_of` found no path, for error messages."""
    qualname = getattr(func, "__qualname__", None)
    module = getattr(func, "__module__", None)
    if not isinstance(qualname, str) or not isinstance(module, str):
        return (
            f"{type(func).__name__} objects (partials, callable instances...) have no import path"
        )
    if "<lambda>" in qualname:
        return "it is a lambda"
    if "<locals>" in qualname:
        return "it is a nested function or closure (defined inside another function)"
    if module == "__main__":
        return "it is defined in __main__, which a worker cannot import"
    if inspect.ismethod(func) and not inspect.isclass(func.__self__):
        return "it is a method bound to an instance"
    if not all(part.isidentifier() for part in module.split(".")):
        return f"its module name {module!r} is not an importable dotted name"
    return f"{label(func)} does not resolve back to this object by its import path"
