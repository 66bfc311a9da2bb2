"""Library defaults, without the ``OMNIQ_`` prefix.

Each constant can be overridden by the environment variable of the same name with an
``OMNIQ_`` prefix (``TASK_TTL`` by ``OMNIQ_TASK_TTL``) and by explicit arguments, in
that order of precedence; ``omniq.config`` does the parsing and validation.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "ALLOWED_MODULES",
    "BASE_DIR",
    "COMPONENT_LOG_LEVELS",
    "DEFAULT_QUEUE",
    "DEFAULT_WORKER",
    "DEPENDENCY_FAILURE_POLICY",
    "DILL_ENABLED",
    "DILL_KEY_ID",
    "DILL_PREVIOUS_SECRETS",
    "DILL_SECRET",
    "DISABLE_LOGGING",
    "EVENT_BUFFER_SIZE",
    "EVENT_LOOP",
    "EVENT_RETENTION_COUNT",
    "EVENT_RETENTION_SECONDS",
    "EVENT_STORAGE_TYPE",
    "EVENT_STORAGE_URL",
    "FSSPEC_URI",
    "GEVENT_WORKERS",
    "LEASE_SECONDS",
    "LOG_LEVEL",
    "MAX_PAYLOAD_BYTES",
    "MAX_WORKERS",
    "PROCESS_WORKERS",
    "RESULT_STORAGE_TYPE",
    "RESULT_STORAGE_URL",
    "RESULT_TTL",
    "RETRY_ATTEMPTS",
    "RETRY_DELAY",
    "RETRY_MAX_DELAY",
    "SHUTDOWN_GRACE",
    "TASK_QUEUE_TYPE",
    "TASK_QUEUE_URL",
    "TASK_TIMEOUT",
    "TASK_TTL",
    "THREAD_WORKERS",
    "TRACING",
]

BASE_DIR: Final = ".omniq"
"""Directory for embedded stores (the default SQLite database, file backends)."""

LOG_LEVEL: Final = "INFO"
"""Library logging level: DEBUG, INFO, WARNING, ERROR or DISABLED."""
DISABLE_LOGGING: Final = False
"""Silence all library logging (task events are unaffected)."""
COMPONENT_LOG_LEVELS: Final[dict[str, str]] = {}
"""Per-component levels, e.g. ``{"storage": "DEBUG"}`` (``OMNIQ_COMPONENT_LOG_LEVELS`` is JSON)."""

TASK_QUEUE_TYPE: Final = "sqlite"
"""Task queue backend: file, memory, sqlite, postgres, redis or nats."""
TASK_QUEUE_URL: Final = ""
"""Connection URL for the task queue; empty means the embedded default under BASE_DIR."""
RESULT_STORAGE_TYPE: Final = ""
"""Result backend; empty means the task queue's engine."""
RESULT_STORAGE_URL: Final = ""
"""Connection URL for results; empty means the task queue's URL."""
EVENT_STORAGE_TYPE: Final = ""
"""Event backend: sqlite, postgres, file or memory; empty disables event logging."""
EVENT_STORAGE_URL: Final = ""
"""Connection URL for the event log."""
FSSPEC_URI: Final = ""
"""fsspec URI for the file backend (``file:///path``, ``memory://``, ``s3://bucket``)."""

DEFAULT_QUEUE: Final = "default"
"""Queue a task goes to when none is named."""
DEFAULT_WORKER: Final = "thread"
"""Worker type for blocking functions without a hint: async, thread, process or gevent."""
MAX_WORKERS: Final = 100
"""Upper bound on tasks running at once in one worker process: the async capacity (cheap
coroutines); thread, process and gevent tasks are further bounded by their pool sizes,
and a worker claims no more while claimed tasks wait for a busy pool."""
THREAD_WORKERS: Final = 4
"""Thread pool size."""
PROCESS_WORKERS: Final = 2
"""Process pool size."""
GEVENT_WORKERS: Final = 100
"""Gevent pool size."""
EVENT_LOOP: Final = "auto"
"""Event loop of blocking (``*_sync``) calls and ``omniq worker``: auto (uvloop when it is
installed and gevent has not patched the process), asyncio or uvloop."""

TASK_TIMEOUT: Final = 300.0
"""Default execution timeout in seconds (0 = none)."""
TASK_TTL: Final = 86400.0
"""Default time a task may wait before it expires unstarted, in seconds (0 = never)."""
RETRY_ATTEMPTS: Final = 3
"""Default number of retries after the first failed attempt."""
RETRY_DELAY: Final = 1.0
"""Base delay of the exponential backoff, in seconds."""
RETRY_MAX_DELAY: Final = 300.0
"""Cap on the backoff delay, in seconds."""
RESULT_TTL: Final = 86400.0
"""How long results are kept, in seconds (0 = forever)."""
LEASE_SECONDS: Final = 30.0
"""How long a claimed task stays leased without a heartbeat before it is reclaimed."""
SHUTDOWN_GRACE: Final = 30.0
"""Seconds a stopping worker waits for running tasks before handing them back."""
DEPENDENCY_FAILURE_POLICY: Final = "cancel"
"""What a failed dependency does to its dependents: cancel or release."""

DILL_ENABLED: Final = False
"""Allow dill payloads (closures, lambdas, arbitrary objects). Off by default."""
DILL_SECRET: Final = ""
"""HMAC secret signing dill payloads; required when dill is enabled."""
DILL_KEY_ID: Final = "k1"
"""Identifier of the active signing key, stored with each payload for rotation."""
DILL_PREVIOUS_SECRETS: Final[dict[str, str]] = {}
"""Retired signing keys still accepted for verification, key id -> secret (JSON in the env)."""
ALLOWED_MODULES: Final[tuple[str, ...]] = ("*",)
"""Modules whose functions a worker may import and run, checked before the import:
``app.tasks`` or ``app.*`` admit a package and everything under it; ``*`` admits every
module except the standard library (math, operator and a few other pure modules aside)
and unpickling libraries, which run only when named (comma-separated in the env)."""
MAX_PAYLOAD_BYTES: Final = 16 * 1024 * 1024
"""Largest serialized argument or result payload accepted, in bytes."""

EVENT_BUFFER_SIZE: Final = 10_000
"""Events buffered in memory before the logger starts dropping (and counting) them."""
EVENT_RETENTION_SECONDS: Final = 7 * 86400.0
"""Events older than this are purged (0 = keep forever)."""
EVENT_RETENTION_COUNT: Final = 0
"""Keep at most this many events (0 = no limit)."""

TRACING: Final = False
"""OpenTelemetry spans for enqueue and each run, with the trace context carried in the
task (needs the ``otel`` extra; without opentelemetry installed it does nothing)."""
