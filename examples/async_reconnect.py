"""Stream with the built-in reconnect: subscriptions survive every reconnect.

python examples/async_reconnect.py [HOST] [SECONDS]
"""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

from polygon import AsyncStreamClient, PolygonStreamError

HOST = sys.argv[1] if len(sys.argv) > 1 else "socket.polygon.io"
SECONDS = float(sys.argv[2]) if len(sys.argv) > 2 else None
API_KEY = os.environ.get("POLYGON_API_KEY") or os.environ.get("MASSIVE_API_KEY") or "any-key"


def on_bar(bar: dict[str, Any]) -> None:
    print(f"{bar['pair']:<8} o={bar['o']} h={bar['h']} l={bar['l']} c={bar['c']}")


def on_status(status: dict[str, Any]) -> None:
    print(f"[status] {status['status']}: {status['message']}")


async def main() -> None:
    client = AsyncStreamClient(API_KEY, "crypto", host=HOST)
    client.change_handler("status", on_status)
    await client.subscribe_crypto_second_aggregates(["BTC-USD", "ETH-USD"], on_bar)
    if SECONDS is not None:
        asyncio.get_running_loop().call_later(
            SECONDS, lambda: asyncio.ensure_future(client.close_stream())
        )
    try:
        # Runs until close_stream(); reconnects with backoff after every loss.
        await client.handle_messages(
            reconnect=True, max_reconnection_attempts=10, reconnection_delay=1.0
        )
    except PolygonStreamError as error:
        print(f"stream stopped: {error}")
    finally:
        print(client.stats)


if __name__ == "__main__":
    asyncio.run(main())
