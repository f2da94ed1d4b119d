"""Iterate over events in a plain for loop.

python examples/iter_messages.py [HOST] [COUNT]
"""

from __future__ import annotations

import os
import sys

from polygon import StreamClient

HOST = sys.argv[1] if len(sys.argv) > 1 else "socket.polygon.io"
COUNT = int(sys.argv[2]) if len(sys.argv) > 2 else 50
API_KEY = os.environ.get("POLYGON_API_KEY") or os.environ.get("MASSIVE_API_KEY") or "any-key"

with StreamClient(API_KEY, "options", host=HOST) as client:
    # The O: prefix is added for you.
    client.subscribe_option_trades(["SPY241220P00720000", "O:AAPL250117C00200000"])
    client.subscribe_option_quotes(["SPY241220P00720000"])
    for number, event in enumerate(client.iter_messages(include_status=False), start=1):
        print(number, event["ev"], event["sym"], event.get("p", event.get("bp")))
        if number >= COUNT:
            break  # leaving the loop keeps the stream; the with block closes it
print(client.stats)
