"""A TCP relay that delays every chunk it forwards by ``ms`` +- ``jitter`` milliseconds
(normal, clipped at 0; order kept), in each direction:
``python delay_relay.py LISTEN_HOST LISTEN_PORT TARGET_HOST TARGET_PORT MS JITTER``.

Used for link latency where the kernel has no ``netem`` qdisc (``tc qdisc add ... netem``
fails): clients connect to the relay in the engine's namespace instead of the engine.
"""

from __future__ import annotations

import asyncio
import random
import sys


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, ms: float,
                jitter: float) -> None:  # fmt: skip
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    async def pump() -> None:
        last = 0.0
        while True:
            data = await reader.read(65536)
            last = max(last, loop.time() + max(0.0, random.gauss(ms, jitter)) / 1000)
            queue.put_nowait((last, data))
            if not data:
                return

    async def release() -> None:
        while True:
            due, data = await queue.get()
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)  # the emulated link delay itself
            if not data:
                writer.close()
                return
            writer.write(data)
            await writer.drain()

    try:
        await asyncio.gather(pump(), release())
    except (ConnectionError, OSError):
        writer.close()


async def main(lh: str, lp: int, th: str, tp: int, ms: float, jitter: float) -> None:
    async def handle(cr: asyncio.StreamReader, cw: asyncio.StreamWriter) -> None:
        sr, sw = await asyncio.open_connection(th, tp)
        await asyncio.gather(_pipe(cr, sw, ms, jitter), _pipe(sr, cw, ms, jitter))

    server = await asyncio.start_server(handle, lh, lp)
    print("relay ready", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    a = sys.argv[1:]
    asyncio.run(main(a[0], int(a[1]), a[2], int(a[3]), float(a[4]), float(a[5])))
