"""The blocking client with callbacks: no async needed.

    python examples/blocking_callbacks.py [HOST] [SECONDS]

Callbacks run on the client's dispatcher thread; the main thread is free.
"""

from __future__ import annotations

import os
import sys
import threading
from typing import Any

from polygon import StreamClient

HOST = sys.argv[1] if len(sys.argv) > 1 else "socket.polygon.io"
SECONDS = float(sys.argv[2]) if len(sys.argv) > 2 else None
API_KEY = os.environ.get("POLYGON_API_KEY") or os.environ.get("MASSIVE_API_KEY") or "any-key"

stopped = threading.Event()


def on_message(client: StreamClient, message: str) -> None:
    print(f"raw frame: {message[:100]}")


def on_error(client: StreamClient, error: BaseException) -> None:
    print(f"error: {error!r}")


def on_close(client: StreamClient, code: int | None, message: str) -> None:
    print(f"closed ({code}): {message}")
    stopped.set()


def on_trade(trade: dict[str, Any]) -> None:
    print(f"trade {trade['sym']} {trade['p']} x {trade['s']}")


client = StreamClient(
    API_KEY, "stocks", host=HOST, on_message=on_message, on_error=on_error, on_close=on_close
)
client.subscribe_stock_trades(["AAPL", "NVDA"], handler_function=on_trade)
client.start_stream_thread()
try:
    stopped.wait(SECONDS)
finally:
    client.close_stream()
