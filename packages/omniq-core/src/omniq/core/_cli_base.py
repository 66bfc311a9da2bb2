"""What the ``omniq`` command line needs without Typer or rich: opening the stores,
loading ``--app``, parsing ``--allow`` and turning an ``OmniQError`` into the one line
an operator sees. ``omniq worker`` runs on this alone (see ``_entry``), so a worker
process does not carry the command line's libraries."""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import sys
import traceback
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from omniq.models import (
    ConfigError,
    DependencyError,
    InvalidTaskError,
    MissingExtraError,
    OmniQError,
    ScheduleError,
    SerializationError,
    UnknownBackendError,
    redact_text,
    redact_url,
)

if TYPE_CHECKING:
    from ._facade import OmniQ

__all__ = [
    "USER_ERRORS",
    "allowed_modules",
    "connect",
    "cwd_on_path",
    "describe_error",
    "error_lines",
    "load_app",
    "open_oq",
]

# Errors caused by what the operator typed or configured: exit code 2, like a usage error.
USER_ERRORS: tuple[type[OmniQError], ...] = (
    ConfigError,
    DependencyError,
    InvalidTaskError,
    MissingExtraError,
    ScheduleError,
    SerializationError,
    UnknownBackendError,
)

STORE_HINT = "check --url or the OMNIQ_*_URL / OMNIQ_*_TYPE variables"


class _Notice(logging.Handler):
    """Hands the message of each WARNING (or worse) record to ``notice``."""

    def __init__(self, notice: Callable[[str], None]) -> None:
        super().__init__(logging.WARNING)
        self._notice = notice

    def emit(self, record: logging.LogRecord) -> None:
        self._notice(record.getMessage())


@contextlib.contextmanager
def _told(notice: Callable[[str], None] | None) -> Iterator[None]:
    """While opening the stores, the ``omniq.core`` warnings (each failed try of a
    wait) go to ``notice``, unless logging is configured already."""
    log = logging.getLogger("omniq.core")
    if notice is None or log.handlers or logging.getLogger().handlers:
        yield
        return
    handler = _Notice(notice)
    log.addHandler(handler)
    try:
        yield
    finally:
        log.removeHandler(handler)


def describe_error(exc: OmniQError) -> str:
    """The operator's one-line account of ``exc``."""
    text = str(exc) or type(exc).__name__
    if isinstance(exc, UnknownBackendError):
        return f"{text}; {STORE_HINT}"
    if isinstance(exc, ConfigError | MissingExtraError | InvalidTaskError | ScheduleError):
        return text  # these messages name the setting/extra/option and what is accepted
    if isinstance(exc, ConnectionError):  # BackendUnavailableError
        return f"{text}; is the server running? {STORE_HINT}"
    return f"{type(exc).__name__}: {text}"


def error_lines(exc: OmniQError, *, debug: bool) -> tuple[str, int]:
    """What to print on stderr for ``exc`` (redacted, ending in the one line) and the
    exit code: 2 for ``USER_ERRORS``, 1 for the rest; the traceback only with ``debug``."""
    code = 2 if isinstance(exc, USER_ERRORS) else 1
    line = describe_error(exc)
    head = ""
    if debug:
        head = redact_text("".join(traceback.format_exception(exc))).rstrip() + "\n"
    elif code != 2:
        line += " (omniq --debug ... shows the traceback)"
    return head + f"omniq: error: {redact_text(' '.join(line.split()))}", code


def connect(oq: OmniQ, *, wait: float = 0.0, notice: Callable[[str], None] | None = None) -> OmniQ:
    """Open ``oq``'s stores now, so a store that cannot be opened is reported as such.

    A bad path (``OSError``) or a URL its driver cannot parse (``ValueError``) becomes a
    ConfigError naming the redacted URL (a one-line user error); ``OmniQError`` passes
    through. The returned instance is open: ``with connect(oq):`` closes it.

    ``wait``: seconds to keep trying while a store is unreachable (``OmniQ.open_sync``'s
    ``wait``); ``notice`` gets each failed try's line, unless logging is configured
    already (then it shows them).
    """
    try:
        with _told(notice):
            oq.open_sync(wait=wait)
    except OmniQError:
        oq.close_sync()
        raise
    except (OSError, ValueError) as exc:
        oq.close_sync()
        raise ConfigError(
            "task store URL",
            redact_url(oq.task_queue_url),
            "a path or URL that can be opened",
            redact_text(f"{type(exc).__name__}: {exc}; {STORE_HINT}"),
        ) from exc
    return oq


def open_oq(
    url: str | None,
    events_url: str | None = None,
    *,
    wait: float = 0.0,
    notice: Callable[[str], None] | None = None,
) -> OmniQ:
    """An open OmniQ on ``url`` (default: the ``OMNIQ_*`` environment); ``wait`` and
    ``notice`` as for ``connect``."""
    from ._facade import OmniQ

    if events_url:
        return connect(OmniQ(url, event_storage=events_url), wait=wait, notice=notice)
    return connect(OmniQ(url) if url else OmniQ(), wait=wait, notice=notice)


def cwd_on_path() -> None:
    """Make modules in the current directory importable, as ``python -m`` would.

    The console script's ``sys.path`` starts with its own bin directory, so without this
    ``omniq worker --app tasks:oq`` run next to ``tasks.py`` (and the task functions in
    that folder) could not be imported.
    """
    cwd = os.getcwd()
    if "" not in sys.path and cwd not in sys.path:
        sys.path.insert(0, cwd)


_APP_FORM = "module:attribute of an OmniQ instance, e.g. --app myapp.tasks:oq"


def _bad_app(spec: str, detail: str) -> ConfigError:
    return ConfigError("--app", spec, _APP_FORM, detail)


def load_app(spec: str) -> OmniQ:
    """The OmniQ instance ``--app module:attr`` names (the module from this folder)."""
    from ._facade import OmniQ

    module, _, attr = spec.partition(":")
    if not module or module.startswith("."):
        raise _bad_app(spec, "the module part is missing")
    cwd_on_path()
    try:
        obj: Any = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name is not None and (module + ".").startswith(exc.name + "."):
            where = f"no module named {exc.name!r} in {os.getcwd()} or on sys.path"
            raise _bad_app(spec, f"{where}; run omniq from its folder or set PYTHONPATH") from exc
        raise _bad_app(spec, f"importing {module!r} failed: {exc}") from exc
    except Exception as exc:  # the user's module failed: report it in one line
        raise _bad_app(spec, f"importing {module!r} failed: {type(exc).__name__}: {exc}") from exc
    for part in (attr or "oq").split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError as exc:
            raise _bad_app(spec, f"{module!r} has no attribute {part!r}") from exc
    if not isinstance(obj, OmniQ):
        raise _bad_app(spec, f"it is a {type(obj).__name__}")
    return obj


def allowed_modules(values: list[str] | None) -> tuple[str, ...] | None:
    """``--allow a --allow b,c`` -> ``("a", "b", "c")``; None when not given."""
    if not values:
        return None
    names = tuple(n.strip() for v in values for n in v.split(",") if n.strip())
    if not names:
        raise ConfigError("--allow", ",".join(values), "module names, e.g. --allow myapp.tasks")
    return names


def gevent_patch(option: str) -> None:
    """Monkey-patch the process for gevent before the app and its drivers are imported."""
    try:
        from gevent import monkey
    except ImportError as exc:
        raise MissingExtraError(
            f"{option} gevent needs gevent: pip install 'omniq-workers[gevent]' "
            "(the omniq distribution installs it)"
        ) from exc
    monkey.patch_all()
