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
import random
from typing import Any
from urllib.parse import urlsplit

from redis.asyncio.connection import Connection
from redis.crc import key_slot

from omniq.models import BackendUnavailableError, StorageError

__all__ = ["RoutedConnection", "Router", "hash_tagged", "parse_routed_url", "stale_route"]

SCHEMES = ("redis+sentinel", "redis+cluster")


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
    nodes) in turn."""

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
        self.seeds = seeds
        self.service = service
        self.slot = key_slot(_tag(prefix)) if kind == "cluster" else -1
        self.timeout = timeout

    async def address(self) -> tuple[str, int]:
        errors: list[str] = []
        for host, port in random.sample(self.seeds, len(self.seeds)):
            try:
                async with asyncio.timeout(self.timeout):
                    got = await self._ask(host, port)
            except (OSError, TimeoutError, ConnectionError, StorageError) as exc:
                errors.append(f"{host}:{port}: {exc}")
                continue
            if got is not None:
                return got
            errors.append(f"{host}:{port}: no answer for {self.service or self.slot}")
        raise BackendUnavailableError(f"redis {self.kind}: no address found ({'; '.join(errors)})")

    async def _ask(self, host: str, port: int) -> tuple[str, int] | None:
        conn = Connection(host=host, port=port, socket_timeout=self.timeout)
        try:
            await conn.connect()  # type: ignore[no-untyped-call]
            if self.kind == "sentinel":
                await conn.send_command("SENTINEL", "get-master-addr-by-name", self.service)
                reply: Any = await conn.read_response()
                if not reply:
                    return None
                return _s(reply[0]), int(reply[1])
            await conn.send_command("CLUSTER", "SLOTS")
            for first, last, master, *_ in await conn.read_response():
                if int(first) <= self.slot <= int(last):
                    addr = _s(master[0]) or host
                    return addr, int(master[1])
            return None
        finally:
            await conn.disconnect()


def _s(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


class RoutedConnection(Connection):
    """A redis-py connection that asks its ``router`` where to connect, each time."""

    def __init__(self, *, router: Router, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.router = router

    async def resolve(self) -> None:
        self.host, self.port = await self.router.address()

    async def _connect(self) -> None:
        await self.resolve()
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
