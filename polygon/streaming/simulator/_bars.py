"""What a bar and a market day accumulate: plain arithmetic, no I/O, no randomness."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from polygon.enums import StreamCluster

SECOND_MS = 1_000
MINUTE_MS = 60_000
DAY_MS = 86_400_000

# US markets count their day in New York time; currencies and crypto trade
# around the clock and roll over at midnight UTC.
_NEW_YORK = ZoneInfo("America/New_York")
_DAY_ZONE: dict[StreamCluster, dt.tzinfo] = {
    StreamCluster.STOCKS: _NEW_YORK,
    StreamCluster.OPTIONS: _NEW_YORK,
    StreamCluster.INDICES: _NEW_YORK,
    StreamCluster.FOREX: dt.timezone.utc,
    StreamCluster.CRYPTO: dt.timezone.utc,
}


@dataclass(slots=True)
class Window:
    """One aggregate window, ``[start, end)`` in Unix ms, and the prints inside it.

    ``volume`` sums the sizes; ``count`` counts the prints (trades, quotes or
    index values, whichever the cluster's bars summarise).
    """

    start: int
    end: int
    open: float
    high: float
    low: float
    close: float
    volume: float = 0.0
    notional: float = 0.0
    count: int = 0

    @classmethod
    def opening(cls, t: int, length: int, price: float) -> Window:
        """The window of ``length`` ms that holds time ``t``, with no print yet."""
        start = t // length * length
        return cls(start, start + length, price, price, price, price)

    def add(self, price: float, size: float) -> None:
        if self.count == 0:
            self.open = self.high = self.low = price
        elif price > self.high:
            self.high = price
        elif price < self.low:
            self.low = price
        self.close = price
        self.volume += size
        self.notional += price * size
        self.count += 1

    @property
    def vwap(self) -> float:
        return self.notional / self.volume if self.volume else self.close


@dataclass(slots=True)
class DayTally:
    """The day so far for one symbol: its opening print, volume and notional."""

    ends_ms: int = 0  # the first millisecond of the next day
    open: float | None = None
    volume: float = 0.0
    notional: float = 0.0

    def roll(self, t: int, cluster: StreamCluster) -> None:
        """Start a new day if ``t`` is past the end of the current one."""
        if t < self.ends_ms:
            return
        zone = _DAY_ZONE[cluster]
        today = dt.datetime.fromtimestamp(t / 1000, zone).date()
        midnight = dt.datetime.combine(today + dt.timedelta(days=1), dt.time(), zone)
        self.ends_ms = int(midnight.timestamp() * 1000)
        self.open = None
        self.volume = 0.0
        self.notional = 0.0

    def add(self, price: float, size: float) -> None:
        if self.open is None:
            self.open = price
        self.volume += size
        self.notional += price * size

    @property
    def vwap(self) -> float:
        return self.notional / self.volume if self.volume else (self.open or 0.0)


__all__ = ["DAY_MS", "MINUTE_MS", "SECOND_MS", "DayTally", "Window"]
