"""Print stock trades and quotes with async and plain handlers.

    python examples/async_handlers.py                       # the real service
    python examples/async_handlers.py ws://127.0.0.1:8765 5 # a local simulator, 5 seconds

The key comes from POLYGON_API_KEY (or MASSIVE_API_KEY); a simulator takes any key.
"""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

from polygon import AsyncStreamClient

HOST = sys.argv[1] if len(sys.argv) > 1 else "socket.polygon.io"
SECONDS = float(sys.argv[2]) if len(sys.argv) > 2 else None
API_KEY = os.environ.get("POLYGON_API_KEY") or os.environ.get("MASSIVE_API_KEY") or "any-key"


async def on_trade(trade: dict[str, Any]) -> None:
    print(f"trade  {trade['sym']:<6} {trade['p']:>10.2f} x {trade['s']}")


def on_quote(quote: dict[str, Any]) -> None:
    print(f"quote  {quote['sym']:<6} {quote['bp']:>10.2f} / {quote['ap']:.2f}")


async def main() -> None:
    async with AsyncStreamClient(API_KEY, "stocks", host=HOST) as client:
        await client.subscribe_stock_trades(["AAPL", "MSFT"], handler_function=on_trade)
        await client.subscribe_stock_quotes(["AAPL"], handler_function=on_quote)
        if SECONDS is not None:
            asyncio.get_running_loop().call_later(
                SECONDS, lambda: asyncio.ensure_future(client.close_stream())
            )
        # Without reconnect=True, each call handles one frame: a loop of our own.
        while client.is_connected:
            await client.handle_messages()


if __name__ == "__main__":
    asyncio.run(main())
