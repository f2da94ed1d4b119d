"""Handlers typed with the event TypedDicts: your editor knows every field.

    python examples/typed_handlers.py [HOST] [SECONDS]

Events are still plain dicts at run time; the types cost nothing.
"""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

from polygon import AsyncStreamClient
from polygon.streaming.types import (
    CryptoLevel2BookEvent,
    CryptoQuoteEvent,
    CryptoTradeEvent,
    is_event,
)

HOST = sys.argv[1] if len(sys.argv) > 1 else "socket.polygon.io"
SECONDS = float(sys.argv[2]) if len(sys.argv) > 2 else 10.0
API_KEY = os.environ.get("POLYGON_API_KEY") or os.environ.get("MASSIVE_API_KEY") or "any-key"


def on_trade(trade: CryptoTradeEvent) -> None:
    print(f"{trade['pair']:<8} trade {trade['p']:>12.2f} x {trade['s']}")


async def on_book(book: CryptoLevel2BookEvent) -> None:
    best_bid, best_ask = book["b"][0][0], book["a"][0][0]
    print(f"{book['pair']:<8} book  {best_bid:>12.2f} / {best_ask:.2f}")


def on_anything(event: dict[str, Any]) -> None:
    # One handler for several kinds: is_event() narrows by the "ev" code.
    if is_event(event, CryptoQuoteEvent):
        print(f"{event['pair']:<8} quote {event['bp']:>12.2f} / {event['ap']:.2f}")


async def main() -> None:
    async with AsyncStreamClient(API_KEY, "crypto", host=HOST) as client:
        await client.subscribe_crypto_trades(["BTC-USD"], handler_function=on_trade)
        await client.subscribe_crypto_level2_book(["BTC-USD"], handler_function=on_book)
        await client.subscribe_crypto_quotes(["ETH-USD"], handler_function=on_anything)
        asyncio.get_running_loop().call_later(
            SECONDS, lambda: asyncio.ensure_future(client.close_stream())
        )
        await client.handle_messages(reconnect=True)


if __name__ == "__main__":
    asyncio.run(main())
