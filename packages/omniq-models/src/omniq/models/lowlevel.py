"""Helpers the OmniQ distributions share to build their public modules.

Not part of the user API (nothing here is in ``omniq.models.__all__``); it lives in the
lowest distribution so every portion can use the same code.
"""

from __future__ import annotations

import importlib
import inspect
import sys
from collections.abc import MutableMapping
from typing import Any

__all__ = ["exported", "publication_problem", "publish"]


def publish(namespace: MutableMapping[str, Any]) -> None:
    """Show every name of a portion's ``__all__`` under the portion's own module name.

    Call it at the end of a portion's ``__init__.py`` with ``globals()``: classes and
    functions defined in its private modules (``omniq.models._task``) get
    ``__module__ = "omniq.models"``, so reprs, pickles by reference, docs and tracebacks
    name the public path and the private modules can move freely. Names re-exported from
    another portion, constants and type aliases are left alone.

    A class's string annotations are first evaluated in the module that defines it:
    msgspec and ``typing.get_type_hints`` resolve them in ``sys.modules[cls.__module__]``,
    which after the rename is the public module, where private helper names are missing.
    An annotation that cannot be evaluated there either (a ``TYPE_CHECKING``-only
    import) stays a string, as unresolvable as before.
    """
    public = namespace["__name__"]
    private = public + "._"
    for name in namespace["__all__"]:
        obj = namespace[name]
        module = getattr(obj, "__module__", None)
        if not isinstance(module, str) or not module.startswith(private):
            continue
        if isinstance(obj, type):
            _resolve_annotations(obj, module)
        try:
            obj.__module__ = public
        except (AttributeError, TypeError):  # objects whose __module__ is read-only
            continue


def _resolve_annotations(cls: type, module: str) -> None:
    annotations = inspect.get_annotations(cls)  # the class's own, as written
    globalns = vars(sys.modules[module])
    localns = dict(vars(cls))
    resolved = dict(annotations)
    for key, value in annotations.items():
        if isinstance(value, str):
            try:
                resolved[key] = eval(value, globalns, localns)
            except (NameError, AttributeError, TypeError, SyntaxError):
                continue
    if resolved != annotations:
        cls.__annotations__ = resolved


def exported(*modules: str) -> list[tuple[str, str, Any]]:
    """``(module, name, object)`` for every class and function in the ``__all__`` of
    ``modules``: what ``publish`` renames, for the portions' own tests of it."""
    found = []
    for module in modules:
        namespace = importlib.import_module(module)
        for name in namespace.__all__:
            obj = getattr(namespace, name)
            if inspect.isclass(obj) or inspect.isfunction(obj):
                found.append((module, name, obj))
    return found


def publication_problem(module: str, obj: Any) -> str | None:
    """Why ``obj``, exported by ``module``, does not show a public home, or None.

    Defined in the portion: ``__module__`` must be the portion's name; re-exported from a
    lower portion: that portion's public name. Either way the object must be reachable
    there by its qualified name, and a class must pickle by reference.
    """
    owner = obj.__module__
    if owner != module and (not owner.startswith("omniq.") or "._" in owner):
        return f"{module}: {obj.__qualname__} shows the private module {owner}"
    if getattr(importlib.import_module(owner), obj.__qualname__, None) is not obj:
        return f"{owner}.{obj.__qualname__} is not the exported object"
    import pickle  # a check for tests: not loaded with every portion

    if inspect.isclass(obj) and pickle.loads(pickle.dumps(obj)) is not obj:
        return f"{owner}.{obj.__qualname__} does not pickle by reference"
    return None
