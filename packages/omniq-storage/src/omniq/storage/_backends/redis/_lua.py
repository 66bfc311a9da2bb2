"""Lua scripts of the Redis backend: every multi-key state change is one script.

Each ``lua/<name>.lua`` is the script ``<name>``, run with ``lua/_common.lua`` (the
shared prelude) in front of it; both are package data read with ``importlib.resources``.

Key layout under the prefix P (all scripts get P as ARGV[1] and now as ARGV[2]):
``t:<id>`` task hash (d envelope, q queue, p priority, s status, a attempt, g lease
generation, tok token, le lease end, w worker, eta, exp, k key, nd open dependencies,
fin finished at); ``r:<q>`` ready zset (score -priority, ties by id); ``d:<q>`` delayed
zset (score eta); ``l:<q>`` lease zset (score lease end; also the index of running
tasks of the queue); ``exp`` zset (score expires_at of
pending tasks); ``fin`` zset (score finished at); ``dn:<id>`` set of dependents waiting
on id; ``ndep`` count of dependency edges still registered in ``dn:*`` sets (0 lets
complete skip dependency resolution); ``keys`` hash idempotency key -> live task id
(or the ended task whose ``unique_for`` window, ``uu``, still holds it); ``ukeys`` zset
of such held keys (score: the window's end), dropped by ``unique_sweep``;
``i:<q>:<status|all>`` per-queue index zsets (score 0, so ordered by id; none for
``running``, whose index is ``l:<q>``); ``queues``
set (queues enqueued to or waited on); ``paused`` set of paused queues (CLAIM leases
none of their tasks, ENQUEUE hands none over); ``iw:<q>`` zset of workers waiting idle on the
queue (score: registration end; member "worker<US>lease<US>channel<US>queue<US>...",
the same string on each of the worker's queues; handover, see ENQUEUE); ``pu`` marks a
task hash whose lease came from a handover; ``chan`` pub/sub channel carrying
``w:<queue>`` (work) and ``r:<id>`` / ``R:<id><US><id>...`` (results) notifications;
each backend's own channel (``chan:<backend id>``, named in its workers' registrations)
carries ``P:<worker><US><token><US><lease end><US><envelope>`` (a task handed over to
one of its workers; US = 0x1f). The worker registry keeps ``wk`` (hash, worker id ->
entry) and ``wkx`` (zset, score expires_at); see ``_workers``.

Hot-path cost: sorted-set writes are buffered per key (net effect per member) and
flushed as one multi-member ZADD/ZREM per key at the end of the script (or before the
script reads a sorted set it wrote), so a batch of 100 costs a handful of zset calls
instead of ~10 per task. Batches arrive as one msgpack argument (``cmsgpack``) and
claimed envelopes leave as one msgpack array, decoded by the client in one pass.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from importlib import resources
from importlib.resources.abc import Traversable
from typing import Generic, TypeVar

from omniq.models import StorageError

__all__ = ["COMMON", "Scripts", "load_script", "load_scripts", "script_names"]

_PRELUDE = "_common.lua"
_PARTS = {
    "claim": ("_limits.lua",),
    "limits": ("_limits.lua",),
    "standby": ("_limits.lua",),
    "enqueue": ("_ended.lua", "_handover.lua"),
    "enqueue_one": ("_handover.lua",),
    "cancel": ("_ended.lua",),
    "expire": ("_ended.lua",),
    "complete": ("_ended.lua",),
    "finish": ("_ended.lua",),
}
"""Shared parts some scripts carry between the prelude and their own text."""


def _lua_dir() -> Traversable:
    return resources.files(__package__ or __name__.rpartition(".")[0]).joinpath("lua")


def script_names() -> list[str]:
    """The scripts shipped with the package: every ``lua/*.lua`` but the prelude."""
    return sorted(
        e.name[: -len(".lua")]
        for e in _lua_dir().iterdir()
        if e.name.endswith(".lua") and not e.name.startswith("_")
    )


def _read(file: str) -> str:
    entry = _lua_dir().joinpath(file)
    if not entry.is_file():
        raise StorageError(f"no Lua script {file!r} in the redis backend's package data")
    return entry.read_text(encoding="utf-8")


COMMON = _read(_PRELUDE)
"""The prelude every script starts with: key helpers, buffered sorted-set writes,
notifications, dependency resolution."""


def load_script(name: str) -> str:
    """The full text of script ``name`` (prelude included), as sent to Redis."""
    return COMMON + "".join(_read(p) for p in _PARTS.get(name, ())) + _read(name + ".lua")


def load_scripts() -> dict[str, str]:
    """Every script by name (the file name without ``.lua``)."""
    return {name: load_script(name) for name in script_names()}


S = TypeVar("S")


class Scripts(Mapping[str, S], Generic[S]):
    """Script name -> ``make(text)`` (the driver's script object), each made on first
    use: a process holds the text of the scripts it runs, not of all of them."""

    def __init__(self, make: Callable[[str], S]) -> None:
        self._make = make
        self._made: dict[str, S] = {}
        self._names = frozenset(script_names())

    def __getitem__(self, name: str) -> S:
        made = self._made.get(name)
        if made is None:
            if name not in self._names:
                raise KeyError(name)
            made = self._made[name] = self._make(load_script(name))
        return made

    def __contains__(self, name: object) -> bool:
        return name in self._names

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._names))

    def __len__(self) -> int:
        return len(self._names)
