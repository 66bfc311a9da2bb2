"""The validated ``Settings`` struct and the per-field rules shared with env parsing."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import msgspec

from omniq.models import (
    MAX_HORIZON_SECONDS,
    MAX_RETRIES,
    ConfigError,
    InvalidTaskError,
    redact_url,
    validate_queue_name,
)
from omniq.models import settings as c

__all__ = [
    "FIELD_RULES",
    "LOG_LEVELS",
    "MAX_LEASE_SECONDS",
    "MIN_LEASE_SECONDS",
    "FieldRule",
    "Settings",
]

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "DISABLED")
_WORKERS = ("async", "thread", "process", "gevent")
_POLICIES = ("cancel", "release")
_LOOPS = ("auto", "asyncio", "uvloop")
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
_BACKEND_NAME = re.compile(r"^[a-z][a-z0-9+.-]*$")
_COMPONENT = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")
_REDACTED = "<redacted>"


class _Bad(ValueError):
    """Internal: a value failed a rule; the message (possibly empty) becomes the detail."""


@dataclass(frozen=True)
class FieldRule:
    """How one setting is parsed from its ``OMNIQ_*`` string and validated.

    ``parse`` turns environment text into a Python value; ``check`` validates a Python
    value and returns it normalized (``"debug"`` -> ``"DEBUG"``, ``5`` -> ``5.0``).
    """

    accepted: str
    check: Callable[[Any], Any]
    parse: Callable[[str], Any] = str.strip
    secret: bool = False
    url: bool = False
    """A connection URL: shown with its password and secret parameters redacted."""
    bounds: tuple[float, float] | None = None
    """Smallest and largest accepted value of a numeric setting."""

    def shown(self, value: object) -> object:
        """The value as it may appear in an error message or repr (secrets and URL
        passwords are redacted)."""
        if self.secret and value:
            return _REDACTED
        if self.url and isinstance(value, str):
            return redact_url(value)
        return value

    def validate(self, name: str, value: Any) -> Any:
        """Return ``value`` normalized, or raise ConfigError naming ``name``."""
        try:
            return self.check(value)
        except (_Bad, TypeError) as exc:
            detail = str(exc) if isinstance(exc, _Bad) else f"got {type(value).__name__}"
            raise ConfigError(name, self.shown(value), self.accepted, detail) from None

    def from_text(self, name: str, text: str) -> Any:
        """Parse and validate an environment string, errors naming the variable ``name``."""
        try:
            return self.check(self.parse(text))
        except (_Bad, TypeError, ValueError) as exc:
            detail = str(exc) if isinstance(exc, _Bad) else ""
            raise ConfigError(name, self.shown(text), self.accepted, detail) from None


def _need(ok: bool, detail: str = "") -> None:
    if not ok:
        raise _Bad(detail)


def _choice(*options: str, empty: str = "", upper: bool = False) -> FieldRule:
    accepted = "one of " + ", ".join(options) + (f", or empty ({empty})" if empty else "")

    def check(v: Any) -> str:
        _need(isinstance(v, str))
        v = v.strip().upper() if upper else v.strip().lower()
        _need(v in options or (bool(empty) and v == ""))
        return str(v)

    return FieldRule(accepted, check)


def _backend(empty: str = "") -> FieldRule:
    """A backend type: the name of an ``omniq.backends`` entry point (a URL scheme).

    Only its shape is checked here; ``omniq.storage`` knows which backends exist and
    rejects an unknown one (naming the ``OMNIQ_*_TYPE`` variable) when it resolves the
    store URLs.
    """
    accepted = "a backend name (a URL scheme such as sqlite, postgres, redis)" + (
        f", or empty ({empty})" if empty else ""
    )

    def check(v: Any) -> str:
        _need(isinstance(v, str))
        v = v.strip().lower()
        _need(bool(_BACKEND_NAME.match(v)) or (bool(empty) and v == ""))
        return str(v)

    return FieldRule(accepted, check)


def _int(minimum: int, maximum: int, what: str = "an integer", zero: str = "") -> FieldRule:
    def check(v: Any) -> int:
        _need(isinstance(v, int) and not isinstance(v, bool))
        _need(minimum <= v <= maximum, f"out of bounds, got {v}")
        return int(v)

    accepted = f"{what} from {minimum} to {maximum:_}" + (f" (0 = {zero})" if zero else "")
    return FieldRule(accepted, check, _int_text, bounds=(minimum, maximum))


def _int_text(text: str) -> int:
    """An integer variable's value: ``int`` alone would also drop Unicode separators
    (``"1\\x1f"`` is 1), which ``float`` and the other numeric settings refuse."""
    s = text.strip(" \t\n\r\v\f")
    if s != s.strip():
        raise ValueError(text)
    return int(s)


def _seconds(
    minimum: float = 0.0, maximum: float = MAX_HORIZON_SECONDS, zero: str = ""
) -> FieldRule:
    def check(v: Any) -> float:
        _need(isinstance(v, int | float) and not isinstance(v, bool))
        _need(math.isfinite(v), "not a finite number")
        _need(minimum <= v <= maximum, f"out of bounds, got {v}")
        return float(v)

    top = "100 years" if maximum == MAX_HORIZON_SECONDS else f"{maximum:g}"
    accepted = f"a number of seconds from {minimum:g} to {top}" + (f" (0 = {zero})" if zero else "")
    return FieldRule(accepted, check, float, bounds=(minimum, maximum))


def _parse_bool(text: str) -> bool:
    t = text.strip().lower()
    _need(t in _TRUE or t in _FALSE)
    return t in _TRUE


def _check_bool(v: Any) -> bool:
    _need(isinstance(v, bool))
    return bool(v)


def _text(secret: bool = False, empty_ok: bool = False) -> FieldRule:
    def check(v: Any) -> str:
        _need(isinstance(v, str) and (empty_ok or v.strip() != ""))
        return str(v) if secret else str(v).strip()

    accepted = "a string" if empty_ok else "a non-empty string"
    return FieldRule(accepted, check, (lambda t: t) if secret else str.strip, secret=secret)


def _check_url(v: Any) -> str:
    _need(isinstance(v, str))
    v = v.strip()
    if v:
        _need(not any(ch.isspace() for ch in v), "no whitespace allowed")
        _need(bool(_SCHEME.match(v)), "missing scheme")
        try:
            # every host of a multi-host URL (postgresql://u@h1:5432,h2:5432/db) has
            # a valid port; raises on a malformed netloc or a bad port
            netloc = urlsplit(v).netloc
            for host in netloc.rpartition("@")[2].split(","):
                _ = urlsplit(f"//{host}").port
        except ValueError:
            # urlsplit's message quotes the port text, which can hold part of a password
            raise _Bad("malformed host or port (percent-encode reserved characters)") from None
    return str(v)


def _json_object(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise _Bad(f"not JSON: {exc}") from None


def _check_levels(v: Any) -> dict[str, str]:
    _need(isinstance(v, dict), "not an object")
    out: dict[str, str] = {}
    for key, level in v.items():
        _need(isinstance(key, str) and bool(_COMPONENT.match(key)), f"bad component {key!r}")
        _need(isinstance(level, str) and level.upper() in LOG_LEVELS, f"bad level {level!r}")
        out[key.removeprefix("omniq.")] = level.upper()
    return out


def _check_secrets(v: Any) -> dict[str, str]:
    _need(isinstance(v, dict), "not an object")
    for key, secret in v.items():
        _need(isinstance(key, str) and key.strip() != "", "empty key id")
        _need(isinstance(secret, str) and secret != "", f"empty secret for key id {key!r}")
    return dict(v)


def _split_modules(text: str) -> list[str]:
    return text.split(",")


def _check_modules(v: Any) -> tuple[str, ...]:
    items = v.split(",") if isinstance(v, str) else v
    _need(isinstance(items, list | tuple), "not a list of module names")
    out: list[str] = []
    for raw in items:
        _need(isinstance(raw, str), f"not a module name: {raw!r}")
        entry = raw.strip()
        entry = entry.removesuffix(".*") if entry != "*" else entry
        if not entry:
            continue
        _need(entry == "*" or bool(_COMPONENT.match(entry)), f"bad module name {raw.strip()!r}")
        if entry not in out:
            out.append(entry)
    _need(bool(out), "no module given (use * for the default)")
    return tuple(out)


_URL = FieldRule(
    "empty or a URL with a scheme, e.g. redis://localhost:6379/0", _check_url, url=True
)
_SECS = _seconds()
_DAY = 86400.0
# Bounds of the numeric settings: each keeps OmniQ out of a state it cannot work in
# (a lease shorter than a heartbeat round trip, a pool of zero) or out of arithmetic
# that overflows (a TTL of 1e308 seconds).
MIN_LEASE_SECONDS = 1.0
"""Shortest lease: below it heartbeats cannot keep up and live workers look crashed."""
MAX_LEASE_SECONDS = _DAY
"""Longest lease: a crashed worker's tasks are retried within a day at the latest."""


def _check_queue(v: Any) -> str:
    _need(isinstance(v, str))
    try:
        return validate_queue_name(v.strip())
    except InvalidTaskError as exc:
        raise _Bad(str(exc)) from None


FIELD_RULES: dict[str, FieldRule] = {
    "base_dir": _text(),
    "log_level": _choice(*LOG_LEVELS, upper=True),
    "disable_logging": FieldRule(
        "a boolean: 1/0, true/false, yes/no, on/off", _check_bool, _parse_bool
    ),
    "component_log_levels": FieldRule(
        'a JSON object of component -> level, e.g. {"storage": "DEBUG"}',
        _check_levels,
        _json_object,
    ),
    "task_queue_type": _backend(),
    "task_queue_url": _URL,
    "result_storage_type": _backend(empty="same as the task queue"),
    "result_storage_url": _URL,
    "event_storage_type": _backend(empty="event logging disabled"),
    "event_storage_url": _URL,
    "fsspec_uri": _URL,
    "default_queue": FieldRule(
        "a queue name: 1 to 128 characters from A-Z a-z 0-9 . _ : -", _check_queue
    ),
    "default_worker": _choice(*_WORKERS),
    "max_workers": _int(1, 10_000),
    "thread_workers": _int(1, 1_000),
    "process_workers": _int(1, 1_000),
    "gevent_workers": _int(1, 100_000),
    "event_loop": _choice(*_LOOPS),
    "task_timeout": _seconds(zero="no timeout"),
    "task_ttl": _seconds(zero="never expires"),
    "retry_attempts": _int(0, MAX_RETRIES),
    "retry_delay": _SECS,
    "retry_max_delay": _SECS,
    "result_ttl": _seconds(zero="kept forever"),
    "lease_seconds": _seconds(MIN_LEASE_SECONDS, MAX_LEASE_SECONDS),
    "shutdown_grace": _seconds(0.0, _DAY),
    "dependency_failure_policy": _choice(*_POLICIES),
    "dill_enabled": FieldRule(
        "a boolean: 1/0, true/false, yes/no, on/off", _check_bool, _parse_bool
    ),
    "dill_secret": _text(secret=True, empty_ok=True),
    "dill_key_id": _text(),
    "dill_previous_secrets": FieldRule(
        "a JSON object of key id -> non-empty secret", _check_secrets, _json_object, secret=True
    ),
    "allowed_modules": FieldRule(
        "comma-separated module names or prefixes (app.tasks, app.*), or * for every "
        "module outside the standard library",
        _check_modules,
        _split_modules,
    ),
    "max_payload_bytes": _int(1, 512 * 1024 * 1024, "a number of bytes"),
    "event_buffer_size": _int(1, 10_000_000),
    "event_retention_seconds": _seconds(zero="kept forever"),
    "event_retention_count": _int(0, 2**31 - 1, zero="no limit"),
    "tracing": FieldRule("a boolean: 1/0, true/false, yes/no, on/off", _check_bool, _parse_bool),
}


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    """Every OmniQ setting, one lowercase field per constant in ``omniq.models.settings``.

    Construction validates types, ranges and choices (and normalizes case and int/float),
    so a ``Settings`` that exists is one OmniQ can run with; a bad value raises
    ConfigError naming the field. Build it through ``ConfigProvider`` to layer the
    ``OMNIQ_*`` environment and explicit overrides over these defaults.
    """

    base_dir: str = c.BASE_DIR
    log_level: str = c.LOG_LEVEL
    disable_logging: bool = c.DISABLE_LOGGING
    component_log_levels: dict[str, str] = msgspec.field(
        default_factory=lambda: dict(c.COMPONENT_LOG_LEVELS)
    )
    task_queue_type: str = c.TASK_QUEUE_TYPE
    task_queue_url: str = c.TASK_QUEUE_URL
    result_storage_type: str = c.RESULT_STORAGE_TYPE
    result_storage_url: str = c.RESULT_STORAGE_URL
    event_storage_type: str = c.EVENT_STORAGE_TYPE
    event_storage_url: str = c.EVENT_STORAGE_URL
    fsspec_uri: str = c.FSSPEC_URI
    default_queue: str = c.DEFAULT_QUEUE
    default_worker: str = c.DEFAULT_WORKER
    max_workers: int = c.MAX_WORKERS
    thread_workers: int = c.THREAD_WORKERS
    process_workers: int = c.PROCESS_WORKERS
    gevent_workers: int = c.GEVENT_WORKERS
    event_loop: str = c.EVENT_LOOP
    task_timeout: float = c.TASK_TIMEOUT
    task_ttl: float = c.TASK_TTL
    retry_attempts: int = c.RETRY_ATTEMPTS
    retry_delay: float = c.RETRY_DELAY
    retry_max_delay: float = c.RETRY_MAX_DELAY
    result_ttl: float = c.RESULT_TTL
    lease_seconds: float = c.LEASE_SECONDS
    shutdown_grace: float = c.SHUTDOWN_GRACE
    dependency_failure_policy: str = c.DEPENDENCY_FAILURE_POLICY
    dill_enabled: bool = c.DILL_ENABLED
    dill_secret: str = c.DILL_SECRET
    dill_key_id: str = c.DILL_KEY_ID
    dill_previous_secrets: dict[str, str] = msgspec.field(
        default_factory=lambda: dict(c.DILL_PREVIOUS_SECRETS)
    )
    allowed_modules: tuple[str, ...] = c.ALLOWED_MODULES
    max_payload_bytes: int = c.MAX_PAYLOAD_BYTES
    event_buffer_size: int = c.EVENT_BUFFER_SIZE
    event_retention_seconds: float = c.EVENT_RETENTION_SECONDS
    event_retention_count: int = c.EVENT_RETENTION_COUNT
    tracing: bool = c.TRACING

    def __post_init__(self) -> None:
        for name, rule in FIELD_RULES.items():
            msgspec.structs.force_setattr(self, name, rule.validate(name, getattr(self, name)))
        if self.dill_enabled and not self.dill_secret:
            raise ConfigError(
                "dill_secret",
                "",
                "a non-empty secret when dill is enabled",
                "set OMNIQ_DILL_SECRET",
            )
        if self.retry_max_delay < self.retry_delay:
            raise ConfigError(
                "retry_max_delay",
                self.retry_max_delay,
                f"seconds >= retry_delay ({self.retry_delay})",
            )
        if self.dill_key_id in self.dill_previous_secrets:
            raise ConfigError(
                "dill_previous_secrets",
                _REDACTED,
                f"retired key ids only, not the active dill_key_id {self.dill_key_id!r}",
            )

    def __repr__(self) -> str:
        parts = []
        for name in self.__struct_fields__:
            value = getattr(self, name)
            parts.append(f"{name}={FIELD_RULES[name].shown(value)!r}")
        return f"Settings({', '.join(parts)})"

    def replace(self, **changes: Any) -> Settings:
        """A validated copy with ``changes`` applied; unknown names raise ConfigError."""
        for name, value in changes.items():
            if name not in FIELD_RULES:
                raise ConfigError(name, value, "a Settings field name", _suggest(name))
        return Settings(**{**msgspec.structs.asdict(self), **changes})


def _suggest(name: str, names: Iterable[str] = FIELD_RULES) -> str:
    """A "did you mean ...?" hint for a misspelt name, or empty."""
    import difflib  # only to name a misspelt variable

    close = difflib.get_close_matches(name, list(names), n=3)
    return f"did you mean {', '.join(close)}?" if close else ""
