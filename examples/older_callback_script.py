"""A script in the older library's callback style: it runs unchanged.

python examples/older_callback_script.py [HOST] [FRAMES]

``main()`` returns at once; the stream keeps the process alive and the
callbacks go on until a callback closes the stream (here, after FRAMES data
frames) or Ctrl-C is pressed.
"""

from __future__ import annotations

import os
import sys

import polygon
from polygon.enums import StreamCluster

HOST = sys.argv[1] if len(sys.argv) > 1 else polygon.streaming.streaming.HOST
FRAMES = int(sys.argv[2]) if len(sys.argv) > 2 else 100
API_KEY = os.environ.get("POLYGON_API_KEY") or os.environ.get("MASSIVE_API_KEY") or "any-key"

frames = 0


def my_own_message_handler(ws: polygon.StreamClient, msg: str) -> None:
    global frames
    print(f"msg received: {msg[:90]}")
    if '"ev":"status"' not in msg:
        frames += 1
        if frames >= FRAMES:
            ws.close()  # the first argument is the client: close() ends the stream


def on_close(ws: polygon.StreamClient, close_code: int | None, close_msg: str) -> None:
    print(f"Stream close with code: {close_code} || msg: {close_msg}")


def main() -> None:
    stream_client = polygon.StreamClient(
        API_KEY, StreamCluster.STOCKS, HOST, on_message=my_own_message_handler, on_close=on_close
    )
    stream_client.start_stream_thread()
    stream_client.subscribe_stock_trades(["AMD", "NVDA"])
    stream_client.subscribe_stock_quotes(["amd"], False)  # force_uppercase_symbols=False


if __name__ == "__main__":
    main()
