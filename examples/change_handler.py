"""Swap a handler while the stream runs: the next event goes to the new one.

python examples/change_handler.py [HOST] [SECONDS]
"""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

from polygon import AsyncStreamClient, StreamServicePrefix

HOST = sys.argv[1] if len(sys.argv) > 1 else "socket.polygon.io"
SECONDS = float(sys.argv[2]) if len(sys.argv) > 2 else 6.0
API_KEY = os.environ.get("POLYGON_API_KEY") or os.environ.get("MASSIVE_API_KEY") or "any-key"


def quiet(trade: dict[str, Any]) -> None:
    print(".", end="", flush=True)


def loud(trade: dict[str, Any]) -> None:
    print(f"\nTRADE {trade['sym']} {trade['p']}")


async def main() -> None:
    async with AsyncStreamClient(API_KEY, "stocks", host=HOST) as client:
        await client.subscribe_stock_trades(["AAPL"], handler_function=quiet)
        stream = asyncio.create_task(client.handle_messages(reconnect=True))
        await asyncio.sleep(SECONDS / 2)
        client.change_handler(StreamServicePrefix.STOCK_TRADES, loud)
        await asyncio.sleep(SECONDS / 2)
        await client.close_stream()
        await stream


if __name__ == "__main__":
    asyncio.run(main())
