"""Read events with ``async for`` instead of handlers.

python examples/async_iteration.py [HOST] [COUNT]
"""

from __future__ import annotations

import asyncio
import os
import sys

from polygon import AsyncStreamClient

HOST = sys.argv[1] if len(sys.argv) > 1 else "socket.polygon.io"
COUNT = int(sys.argv[2]) if len(sys.argv) > 2 else 50
API_KEY = os.environ.get("POLYGON_API_KEY") or os.environ.get("MASSIVE_API_KEY") or "any-key"


async def main() -> None:
    async with AsyncStreamClient(API_KEY, "crypto", host=HOST) as client:
        await client.subscribe_crypto_trades(["BTC-USD", "ETH-USD"])
        # The iterator connects, logs in and reconnects by itself.
        number = 0
        async for event in client.iter_messages(include_status=False):
            number += 1
            print(number, event["pair"], event["p"])
            if number >= COUNT:
                break  # nothing to clean up; the async with block closes the client
        print(client.stats)


if __name__ == "__main__":
    asyncio.run(main())
