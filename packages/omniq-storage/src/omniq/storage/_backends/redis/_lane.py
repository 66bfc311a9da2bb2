"""A short path for one script call at a time: a connection the backend holds, used
when it is free, with the command packed and sent directly.

Why: on an idle process, redis-py's per-command machinery (``execute_command``: pool
checkout with its readiness probe, retry wrapper, release) costs more than the rest of
an ``enqueue`` before the bytes leave (docs/performance.md has the measurements). Calls
that find the lane busy use the pool, so concurrency is that of the pool.

Failure handling keeps the pool path's guarantees: a call whose connection fails before
a reply is sent again through the pool (which retries, as for every other command), a
script unknown to the server (``NOSCRIPT`` after a restart or ``SCRIPT FLUSH``) is loaded
by the pool path, and a call cancelled mid-read drops the connection so that no stale
reply is read by the next one.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from typing import Any

from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from omniq.models import StorageError

from ._resp import pack_command

__all__ = ["Lane", "LaneMissed"]

_PING = pack_command("PING")


class LaneMissed(StorageError):
    """The lane could not run the call (busy, not connected, or no reply came): the
    caller runs it through the pool."""


class Lane:
    """``evalsha`` on a connection of its own, one call at a time."""

    def __init__(self, client: Any) -> None:
        pool = client.connection_pool
        kwargs = dict(pool.connection_kwargs)
        # With a socket_timeout, redis-py wraps every send in asyncio.wait_for (a new
        # Task on Python 3.11) and every read in a timeout scope; here a watchdog drops
        # the connection under a call that has waited longer instead (see _watch).
        self._timeout: float | None = kwargs.get("socket_timeout")
        kwargs["socket_connect_timeout"] = kwargs.get("socket_connect_timeout") or self._timeout
        kwargs["socket_timeout"] = None
        kwargs["retry"] = Retry(NoBackoff(), 0)  # failing fast: the pool path retries
        self._conn = pool.connection_class(**kwargs)  # connects on first use
        self.busy = False
        self._since = 0.0
        self._watchdog: asyncio.Task[None] | None = None

    async def evalsha(self, sha: str, args: Sequence[Any], *, wake_first: bool = False) -> Any:
        """Run the script; raises ``LaneMissed`` when the pool path must run it instead.

        ``wake_first``: send a PING in the same write, ahead of the script. Redis writes
        pending replies after each event-loop turn, most recently queued client first;
        the PING queues this caller before the script publishes, so a worker woken by
        the script (a handover) is written to, and starts waking, before the caller's
        reply wakes the caller (which matters when the two processes compete for a
        core right then).
        """
        if self.busy:
            raise LaneMissed
        self.busy = True
        self._since = time.monotonic()
        if self._watchdog is None and self._timeout:
            self._watchdog = asyncio.create_task(self._watch(self._timeout))
        conn = self._conn
        try:
            packed = pack_command("EVALSHA", sha, 0, *args)
            if wake_first:
                packed = _PING + packed
            await conn.send_packed_command(packed, check_health=False)
            if wake_first:
                await conn.read_response()
            return await conn.read_response()
        except NoScriptError:
            raise LaneMissed from None
        except ResponseError:
            raise  # the script failed on the server: a whole reply, the connection is fine
        except (RedisConnectionError, RedisTimeoutError, OSError):  # TimeoutError too
            await conn.disconnect(nowait=True)
            raise LaneMissed from None
        except BaseException:
            # Cancelled (or failed) between send and reply: the reply would be read by
            # the next call, so this connection goes (recent redis-py does so as well).
            await conn.disconnect(nowait=True)
            raise
        finally:
            self.busy = False

    async def _watch(self, limit: float) -> None:
        """Drop the connection under a call older than ``limit`` (the server hangs or
        the network is gone): the call then fails over to the pool path."""
        while True:
            await asyncio.sleep(limit / 4)
            if self.busy and time.monotonic() - self._since > limit:
                await self._conn.disconnect(nowait=True)

    async def close(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watchdog
            self._watchdog = None
        await self._conn.disconnect()
