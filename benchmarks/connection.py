"""The connection's short road alone: CPU time per frame, no socket, no engine.

Feeds a block of framed trades (as benchmarks/feed.py writes them) through
:class:`~polygon.streaming._connection.FastConnection` the way a transport
does (``get_buffer``/``buffer_updated``, 64 KiB reads), with a no-op message
callback, and prints the best of seven CPU-time measurements per frame size.
The machine's load moves it far less than the throughput runs: a paired
comparison of two trees is this script run from each, alternately::

    .venv/bin/python -m benchmarks.connection
    (cd /tmp/other-tree && /work/w14/.venv/bin/python -m benchmarks.connection)
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from websockets.client import ClientProtocol
from websockets.protocol import State
from websockets.uri import parse_uri

from polygon.streaming._connection import ConnectionOptions, FastConnection

TRADE = (
    '{"ev":"T","sym":"AAPL","x":4,"i":"71675577320245","z":3,"p":227.34,"s":100,'
    '"c":[12,37],"t":1712345678901,"q":4823}'
)
READ_SIZE = 64 * 1024
BLOCK_BYTES = 2_000_000


class NullTransport(asyncio.Transport):
    """Takes writes and flow control, does nothing."""

    def write(self, data: Any) -> None:
        pass

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def is_closing(self) -> bool:
        return False

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass


def framed(per_frame: int) -> bytes:
    payload = ("[" + ",".join([TRADE] * per_frame) + "]").encode()
    size = len(payload)
    header = bytes([0x81, size]) if size < 126 else bytes([0x81, 126]) + size.to_bytes(2, "big")
    return header + payload


async def ns_per_frame(per_frame: int, repeats: int = 7) -> float:
    frame = framed(per_frame)
    block = frame * (BLOCK_BYTES // len(frame))
    protocol = ClientProtocol(parse_uri("ws://bench/"), state=State.OPEN, max_size=2**24)
    connection = FastConnection(protocol, ConnectionOptions("ws://bench/"))
    connection.connection_made(NullTransport())
    connection.deliver_messages(lambda message: None)
    best = float("inf")
    for _ in range(repeats):
        start = time.process_time()
        for _ in range(10):
            for offset in range(0, len(block), READ_SIZE):
                piece = block[offset : offset + READ_SIZE]
                connection.get_buffer(len(piece))[: len(piece)] = piece
                connection.buffer_updated(len(piece))
        best = min(best, time.process_time() - start)
    return best / (10 * len(block) // len(frame)) * 1e9


async def main() -> None:
    for per_frame in (1, 100):
        print(f"{per_frame:>3} events/frame: {await ns_per_frame(per_frame):,.0f} ns per frame")


if __name__ == "__main__":
    asyncio.run(main())
