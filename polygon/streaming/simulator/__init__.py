"""A local, protocol-faithful market-data WebSocket server with fault hooks.

Used by the integration tests (real sockets on ``127.0.0.1``, port 0), by the
demo and examples, and as a command::

    python -m polygon.streaming.simulator --port 8765

In async code::

    async with MarketSimulator(speed=60, start="2025-06-02T13:30:00Z") as sim:
        ...  # a market that runs a minute per second, from that morning's open

    async with MarketSimulator(rate=0) as sim:
        ...  # connect a client to sim.url + "/stocks"
        await sim.publish("stocks", [sim.factory("stocks").make("T", "AAPL")])

From blocking code, :class:`SimulatorThread` runs it on a background thread.
"""

from __future__ import annotations

from polygon.streaming.simulator._clock import MarketClock
from polygon.streaming.simulator._data import EventFactory, default_symbols
from polygon.streaming.simulator._replay import infer_cluster, replay
from polygon.streaming.simulator._server import MarketSimulator
from polygon.streaming.simulator._session import Session
from polygon.streaming.simulator._thread import SimulatorThread

__all__ = [
    "EventFactory",
    "MarketClock",
    "MarketSimulator",
    "Session",
    "SimulatorThread",
    "default_symbols",
    "infer_cluster",
    "replay",
]
