"""Where a Redis backend's server is: one fixed address, the primary a Sentinel group
names, or the Redis Cluster master serving the backend's hash slot.

``redis+sentinel://s1:26379,s2:26379/mymaster?prefix=...`` asks the sentinels for the
primary of ``mymaster``; ``redis+cluster://n1:7000,n2:7001?prefix={ns}:`` asks a node
which master serves the slot of the prefix's hash tag. Every key of a backend carries
its prefix, so with a hash tag in the prefix all of them hash to one slot: each Lua
script touches keys of one slot on one master and stays atomic. Sharding is by
namespace: backends with different prefixes spread over the masters.

Connections resolve the address each time they connect (``RoutedConnection``), so
after a failover the next connection goes to the new primary; a reply saying this
server no longer serves us (``READONLY`` from a demoted primary, ``MOVED`` after a slot
moved) makes the backend drop its connections (see ``stale_route``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

from redis.asyncio.connection import Connection
from redis.crc import key_slot
from redis.exceptions import ResponseError

from omniq.models import BackendUnavailableError, StorageError

__all__ = ["RoutedConnection", "Router", "hash_tagged", "parse_routed_url", "stale_route"]

SCHEMES = ("redis+sentinel", "redis+cluster")

T = TypeVar("T")


def hash_tagged(prefix: str) -> str:
    """``prefix`` with a hash tag (``{...}``) when it has none: ``omniq:`` -> ``{omniq}:``."""
    opened = prefix.find("{")
    if opened >= 0 and prefix.find("}", opened + 2) > opened:
        return prefix
    core = prefix[:-1] if prefix.endswith(":") else prefix
    return "{" + (core or "omniq") + "}" + (":" if prefix.endswith(":") or not prefix else "")


def _tag(prefix: str) -> bytes:
    opened = prefix.find("{")
    closed = prefix.find("}", opened + 1)
    return prefix[opened + 1 : closed].encode()


class Router:
    """Finds the address to connect to by asking the seed nodes (sentinels or cluster
    nodes) in turn.

    Seeds are asked in the order given; one whose answer led to a connection moves to
    the front, so later connections ask it first. Right after a failover a sentinel
    that has not heard of it yet still names the old primary: each named address is
    tried in turn, and one the sentinel itself flags down (``s_down``/``o_down``) only
    after those it does not."""

    def __init__(
        self,
        kind: str,
        seeds: list[tuple[str, int]],
        *,
        service: str = "",
        prefix: str = "",
        timeout: float = 2.0,
    ) -> None:
        self.kind = kind
        self.seeds = list(seeds)
        self.service = service
        self.slot = key_slot(_tag(prefix)) if kind == "cluster" else -1
        self.timeout = timeout

    async def connect(self, attempt: Callable[[tuple[str, int]], Awaitable[T]]) -> T:
        """Call ``attempt`` with each distinct address the seeds name, best first, until
        one does not raise ``OSError``/``TimeoutError``, and return what it returned;
        raise when none worked."""
        errors: list[str] = []
        failed: list[BaseException] = []
        seen: set[tuple[str, int]] = set()
        flagged: list[tuple[tuple[str, int], tuple[str, int]]] = []

        async def tried(seed: tuple[str, int], addr: tuple[str, int]) -> list[T]:
            try:
                out = await attempt(addr)
            except (OSError, TimeoutError) as exc:
                errors.append(f"{addr[0]}:{addr[1]}: {exc}")
                failed.append(exc)
                return []
            self._prefer(seed)
            return [out]

        for seed in list(self.seeds):
            try:
                async with asyncio.timeout(self.timeout):
                    got = await self._ask(*seed)
            except (OSError, TimeoutError, ConnectionError, StorageError) as exc:
                errors.append(f"{seed[0]}:{seed[1]}: {exc}")
                continue
            if got is None:
                errors.append(f"{seed[0]}:{seed[1]}: no answer for {self.service or self.slot}")
                continue
            addr, down = got
            if addr in seen:
                continue
            seen.add(addr)
            if down:
                flagged.append((seed, addr))
            elif done := await tried(seed, addr):
                return done[0]
        for seed, addr in flagged:
            if done := await tried(seed, addr):
                return done[0]
        if len(errors) == 1 and failed:
            raise failed[0]
        raise BackendUnavailableError(
            f"redis {self.kind}: no address reachable ({'; '.join(errors)})"
        )

    def _prefer(self, seed: tuple[str, int]) -> None:
        """``seed`` answered with an address that worked: ask it first next time."""
        if self.seeds[0] != seed:
            self.seeds.remove(seed)
            self.seeds.insert(0, seed)

    async def _ask(self, host: str, port: int) -> tuple[tuple[str, int], bool] | None:
        """The address ``host:port`` names, and whether it says that address is down."""
        conn = Connection(host=host, port=port, socket_timeout=self.timeout)
        try:
            await conn.connect()  # type: ignore[no-untyped-call]
            if self.kind == "sentinel":
                await conn.send_command("SENTINEL", "MASTER", self.service)
                try:
                    reply: Any = await conn.read_response()
                except ResponseError:  # the sentinel does not watch this service
                    return None
                pairs = (
                    reply.items()
                    if isinstance(reply, dict)
                    else zip(reply[::2], reply[1::2], strict=True)
                )
                fields = {_s(k): _s(v) for k, v in pairs}  # RESP3 map or RESP2 list
                flags = set(fields.get("flags", "").split(","))
                return (fields["ip"], int(fields["port"])), bool(flags & {"s_down", "o_down"})
            await conn.send_command("CLUSTER", "SLOTS")
            for first, last, master, *_ in await conn.read_response():
                if int(first) <= self.slot <= int(last):
                    addr = _s(master[0]) or host
                    return (addr, int(master[1])), False
            return None
        finally:
            await conn.disconnect()


def _s(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


class RoutedConnection(Connection):
    """A redis-py connection that asks its ``router`` where to connect, each time, and
    tries the next address named when one refuses or does not answer."""

    def __init__(self, *, router: Router, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.router = router

    async def _connect(self) -> None:
        await self.router.connect(self._connect_to)

    async def _connect_to(self, address: tuple[str, int]) -> None:
        self.host, self.port = address
        await super()._connect()  # type: ignore[no-untyped-call]


def stale_route(exc: BaseException) -> bool:
    """A reply meaning the server no longer serves this backend's keys as primary."""
    text = str(exc)
    return text.startswith(("READONLY", "MOVED", "CLUSTERDOWN", "TRYAGAIN", "MASTERDOWN"))


def parse_routed_url(url: str, prefix: str) -> tuple[Router | None, str]:
    """``(router, driver url)`` for a Sentinel or Cluster URL; ``(None, url)`` else.

    The driver URL keeps the database, credentials and query (less OmniQ's options,
    already removed) with a placeholder host the router replaces on every connect."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in SCHEMES:
        return None, url
    parts = urlsplit("redis://" + rest)
    auth, _, hosts = parts.netloc.rpartition("@")
    seeds: list[tuple[str, int]] = []
    default_port = 26379 if scheme == "redis+sentinel" else 6379
    for item in hosts.split(","):
        if not item:
            continue
        h, _, p = item.rpartition(":") if ":" in item else (item, "", "")
        seeds.append((h, int(p) if p else default_port))
    if not seeds:
        raise StorageError(f"{scheme} URL names no host")
    path = parts.path.strip("/")
    if scheme == "redis+sentinel":
        service, _, db = path.partition("/")
        if not service:
            raise StorageError("redis+sentinel URL needs the service name: .../mymaster")
        router = Router("sentinel", seeds, service=service)
    else:
        service, db = "", ""
        router = Router("cluster", seeds, prefix=prefix)
    driver = "redis://" + (auth + "@" if auth else "") + "routed:0/" + (db or "0")
    return router, driver + (f"?{parts.query}" if parts.query else "")
