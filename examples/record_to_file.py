"""Record every event to a gzip-compressed JSON-lines file.

    python examples/record_to_file.py [HOST] [SECONDS] [FILE]

Each line is one event exactly as received, so the file can be replayed or
loaded with any JSON-lines reader.
"""

from __future__ import annotations

import asyncio
import gzip
import os
import sys
from typing import Any

import orjson

from polygon import AsyncStreamClient

HOST = sys.argv[1] if len(sys.argv) > 1 else "socket.polygon.io"
SECONDS = float(sys.argv[2]) if len(sys.argv) > 2 else 10.0
PATH = sys.argv[3] if len(sys.argv) > 3 else "trades.jsonl.gz"
API_KEY = os.environ.get("POLYGON_API_KEY") or os.environ.get("MASSIVE_API_KEY") or "any-key"


async def main() -> None:
    recorded = 0
    with gzip.open(PATH, "wb") as out:

        def record(event: dict[str, Any]) -> None:
            nonlocal recorded
            out.write(orjson.dumps(event) + b"\n")
            recorded += 1

        async with AsyncStreamClient(API_KEY, "stocks", host=HOST) as client:
            await client.subscribe_stock_trades(None, handler_function=record)  # every ticker
            asyncio.get_running_loop().call_later(
                SECONDS, lambda: asyncio.ensure_future(client.close_stream())
            )
            await client.handle_messages(reconnect=True)
    print(f"recorded {recorded} events to {PATH}")


if __name__ == "__main__":
    asyncio.run(main())
