"""Import paths for task callables: check them, build them, resolve them (cached)."""

from __future__ import annotations

import functools
import importlib
import inspect
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from omniq.models import InvalidTaskError

__all__ = [
    "ANY_MODULE",
    "GUARDED_THIRD_PARTY",
    "PURE_STDLIB_MODULES",
    "admits",
    "check_allowed",
    "import_path_of",
    "is_guarded",
    "label",
    "module_of_label",
    "normalize_allowed",
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


ANY_MODULE = "*"
"""Allow-list entry admitting every module except the guarded ones (see :func:`is_guarded`)."""

PURE_STDLIB_MODULES: frozenset[str] = frozenset(
    {"cmath", "decimal", "fractions", "math", "operator", "statistics"}
)
"""Standard-library modules of pure computation that ``*`` admits: no files, processes,
network, imports or code evaluation can be reached through their functions."""

GUARDED_THIRD_PARTY: frozenset[str] = frozenset({"cloudpickle", "dill"})
"""Installed-package modules that unpickle (run code) and so are guarded like the stdlib."""


def is_guarded(module: str) -> bool:
    """True if ``module`` runs only when an allow-list names it (``*`` is not enough).

    Guarded: the standard library (``os``, ``subprocess``, ``builtins``, ``importlib``,
    ``logging.config``...: one task call away from running a command or code) except
    :data:`PURE_STDLIB_MODULES`, plus :data:`GUARDED_THIRD_PARTY`.
    """
    top = module.partition(".")[0]
    if top in PURE_STDLIB_MODULES:
        return False
    return top in sys.stdlib_module_names or top in GUARDED_THIRD_PARTY


def normalize_allowed(allowed_modules: str | Iterable[str]) -> tuple[str, ...]:
    """Allow-list entries as stored: ``"a, b.*"`` -> ``("a", "b")``; InvalidTaskError if bad.

    An entry is ``*``, a dotted module name, or a dotted name ending in ``.*`` (the same
    as the name: the module and everything under it). Empty entries are dropped.
    """
    items = allowed_modules.split(",") if isinstance(allowed_modules, str) else allowed_modules
    out: list[str] = []
    for raw in items:
        if not isinstance(raw, str):
            raise InvalidTaskError(f"allowed module entries are str, not {type(raw).__name__}")
        entry = raw.strip()
        if entry.endswith(".*"):
            entry = entry[:-2]
        entry = entry.rstrip(".")
        if not entry:
            continue
        if entry != ANY_MODULE and not all(p.isidentifier() for p in entry.split(".")):
            raise InvalidTaskError(
                f"invalid allowed module {raw!r}: expected '*', 'package.module' or 'package.*'"
            )
        if entry not in out:
            out.append(entry)
    return tuple(out)


def admits(module: str, allowed_modules: Sequence[str]) -> bool:
    """True if the allow-list admits ``module`` (see :func:`check_allowed`)."""
    for raw in allowed_modules:
        if raw == ANY_MODULE:
            if not is_guarded(module):
                return True
            continue
        prefix = raw[:-2] if raw.endswith(".*") else raw
        prefix = prefix.rstrip(".")
        if prefix and (module == prefix or module.startswith(prefix + ".")):
            return True
    return False


def check_allowed(path: str, module: str, allowed_modules: Sequence[str] | None) -> None:
    """Refuse ``module`` unless the allow-list ``allowed_modules`` admits it.

    An entry ``"app"`` (or ``"app.*"``) admits ``app`` and ``app.tasks`` but not
    ``apple``; ``"*"`` admits every module that is not guarded (:func:`is_guarded`: the
    standard library apart from pure math/operator modules, and unpickling libraries); a
    guarded module runs only when an entry names it or a package above it. ``None`` skips
    the check (for paths the caller wrote itself). Nothing is imported by this check.
    """
    if allowed_modules is None:
        return
    if isinstance(allowed_modules, str):
        allowed_modules = normalize_allowed(allowed_modules)
    if admits(module, allowed_modules):
        return
    why = (
        f"{module!r} is guarded (standard library or an unpickler): name it explicitly to run it"
        if ANY_MODULE in allowed_modules and is_guarded(module)
        else f"refused without importing {module!r}"
    )
    raise InvalidTaskError(
        f"task import path {path!r} is outside the allowed modules "
        f"{list(allowed_modules)!r}: {why} (setting allowed_modules, OMNIQ_ALLOWED_MODULES)"
    )


def module_of_label(path: str) -> str | None:
    """The module named by a ``module:qualname`` label, or None if it names none usable.

    Labels of dill-sent callables may not be import paths (``<lambda>``, ``<locals>``), but
    their module part still says where the function came from.
    """
    module, sep, _ = path.partition(":")
    if not sep or not module or not all(p.isidentifier() for p in module.split(".")):
        return None
    return module


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
