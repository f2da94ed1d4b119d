"""Playing a recording back through the simulator, at its own pace or faster.

Events are paced by their own timestamps (``t``; bars by ``e`` or ``s``):
events that share a timestamp go out as one frame, and the gap to the next
timestamp is slept, divided by ``speed``. ``speed=0`` sends as fast as the
clients take it, in frames of up to ``batch_size`` events.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Iterator
from typing import Any

from polygon.enums import StreamCluster
from polygon.streaming.simulator._server import MarketSimulator

Event = dict[str, Any]

_CLUSTER_OF_CODE = {
    "XT": StreamCluster.CRYPTO,
    "XQ": StreamCluster.CRYPTO,
    "XL2": StreamCluster.CRYPTO,
    "XA": StreamCluster.CRYPTO,
    "XAS": StreamCluster.CRYPTO,
    "C": StreamCluster.FOREX,
    "CA": StreamCluster.FOREX,
    "CAS": StreamCluster.FOREX,
    "V": StreamCluster.INDICES,
    "LULD": StreamCluster.STOCKS,
    "NOI": StreamCluster.STOCKS,
}


def infer_cluster(events: Iterable[Event]) -> StreamCluster:
    """The cluster a recording came from, by its event codes and symbols."""
    for event in events:
        code = event.get("ev")
        if code in _CLUSTER_OF_CODE:
            return _CLUSTER_OF_CODE[code]
        symbol = event.get("sym")
        if isinstance(symbol, str):
            if symbol.startswith("O:"):
                return StreamCluster.OPTIONS
            if symbol.startswith("I:"):
                return StreamCluster.INDICES
            if "/" in symbol:
                return StreamCluster.FOREX
            if "-" in symbol:
                return StreamCluster.CRYPTO
            return StreamCluster.STOCKS
    return StreamCluster.STOCKS


def event_time_ms(event: Event) -> float | None:
    """An event's own time in milliseconds, if it has one."""
    for field in ("t", "e", "s"):
        value = event.get(field)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            # FMV and LV timestamps are nanoseconds in the specification.
            return value / 1e6 if value > 1e14 else float(value)
    return None


def frames(events: Iterable[Event], batch_size: int) -> Iterator[tuple[float | None, list[Event]]]:
    """Consecutive events with the same time, as ``(time_ms, events)``, at most ``batch_size``."""
    frame: list[Event] = []
    frame_time: float | None = None
    for event in events:
        time_ms = event_time_ms(event)
        if frame and (time_ms != frame_time or len(frame) >= batch_size):
            yield frame_time, frame
            frame = []
        frame_time = time_ms
        frame.append(event)
    if frame:
        yield frame_time, frame


async def replay(
    simulator: MarketSimulator,
    cluster: StreamCluster,
    events: Iterable[Event],
    speed: float = 1.0,
    batch_size: int = 100,
) -> int:
    """Publish ``events`` to ``cluster``'s subscribers, paced; returns how many were sent.

    Only subscribed sessions get each event, as with live data.
    """
    if speed < 0:
        raise ValueError(f"speed must be >= 0, got {speed!r}")
    loop = asyncio.get_running_loop()
    started = loop.time()
    first: float | None = None
    sent = 0
    for time_ms, frame in frames(events, batch_size):
        if speed > 0 and time_ms is not None:
            first = time_ms if first is None else first
            due = started + (time_ms - first) / 1000.0 / speed
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
        await simulator.publish(cluster, frame)
        sent += len(frame)
    return sent
