"""One symbol's market over market time: the events that agree with each other.

A :class:`SymbolMarket` turns the passing of market time into events, in time
order. Arrivals (a quote change or a trade; a quote for forex, a value for an
index) come as a Poisson process at ``rate`` per market second. The price walks
at each quote change; every trade prints between the current bid and ask. At
each market second the window that closed becomes a bar (only if it had
prints), and likewise each minute. The value streams derive from the same
state: ``FMV`` is the last trade, ``LV`` the quote midpoint, ``LULD`` bands sit
around a five-minute average of the trades, and ``XL2`` books are built around
the current quote, so they are never crossed.

A market opens when some client first wants its symbol and closes when none
does. It opens at the start of the current market second, generating the
moments before the opening silently (nobody was subscribed yet, as with the
live feed), so its first second bar is complete; a window that began before the
opening is never sent as a bar. Nothing here does I/O.
"""

from __future__ import annotations

import math
from collections import deque

from polygon.enums import StreamCluster
from polygon.streaming.simulator._bars import MINUTE_MS, SECOND_MS, Window
from polygon.streaming.simulator._data import _VOLATILITY, Event, EventFactory

# Codes of the second and minute bars per cluster.
_BAR_CODES: dict[StreamCluster, tuple[str, str]] = {
    StreamCluster.STOCKS: ("A", "AM"),
    StreamCluster.OPTIONS: ("A", "AM"),
    StreamCluster.INDICES: ("A", "AM"),
    StreamCluster.FOREX: ("CAS", "CA"),
    StreamCluster.CRYPTO: ("XAS", "XA"),
}
# The share of arrivals that are quote changes where there are trades too.
_QUOTE_SHARE = 0.5
# LULD reference prices are recomputed this often, over this much history.
LULD_EVERY_MS = 30_000
LULD_HISTORY_MS = 300_000
# Imbalance messages come about once every ten market seconds.
_IMBALANCE_CHANCE_PER_SECOND = 0.1


class SymbolMarket:
    """The generated market of one symbol of one cluster.

    Call :meth:`open` once some client wants the symbol, then :meth:`advance`
    to the current market time on each tick; :meth:`close` when no client wants
    it any more. The symbol's price, sequence numbers and day totals live in the
    cluster's :class:`EventFactory`, so they carry over a close and reopen.
    """

    def __init__(self, factory: EventFactory, symbol: str) -> None:
        self._factory = factory
        self._cluster = factory.cluster
        self._symbol = symbol
        self._ins = factory._instrument(symbol)
        self._second_code, self._minute_code = _BAR_CODES[self._cluster]
        self._has_trades = self._cluster not in (StreamCluster.FOREX, StreamCluster.INDICES)
        self._sigma = _VOLATILITY[self._cluster]
        self.is_open = False
        self.now = 0.0  # market time (ms) generated up to
        self._covered_from = 0
        self._next_arrival = 0.0
        self._next_boundary = 0
        self._last_step = 0.0
        self._bid = self._ask = self._last_print = 0.0
        self._second: Window | None = None
        self._minute: Window | None = None
        self._history: deque[tuple[int, float, float]] = deque()  # (second, notional, volume)
        self._luld_bands: tuple[float, float] | None = None  # the last sent

    @property
    def symbol(self) -> str:
        return self._symbol

    def open(self, at_ms: float, rate: float, backfill: bool = True) -> list[Event]:
        """Open at market time ``at_ms``; returns what to send at the opening: the
        quote (or index value) in force, and for a stock its LULD bands.

        With ``backfill`` (a symbol nobody wanted until now) the moments since
        the start of the current second are generated unsent, so the first
        second bar is whole. Without (a resume, with subscribers waiting) the
        market starts at ``at_ms``, and the partial second gets no bar.
        """
        self.is_open = True
        second = int(at_ms) // SECOND_MS * SECOND_MS
        start = second if backfill else at_ms
        self._covered_from = second if backfill else second + SECOND_MS
        self.now = self._last_step = float(start)
        self._next_boundary = second + SECOND_MS
        self._next_arrival = start + self._gap(rate)
        self._second = self._minute = None
        self._history.clear()
        self._ins.day.roll(second, self._cluster)
        self._set_quote()
        self._last_print = self._mid if not self._has_trades else self._last_print or self._mid
        self.advance(at_ms, rate)  # the moments before anyone subscribed: not sent
        # Subscribers learn the quote in force at once, so that every trade
        # they see has a quote before it.
        out: list[Event] = []
        self._announce(int(at_ms), out)
        if self._cluster is StreamCluster.STOCKS:
            out.append(self._luld(int(at_ms), self._last_print))
        return out

    def close(self) -> None:
        """Stop generating; windows still open are dropped (they will not be complete)."""
        self.is_open = False
        self._second = self._minute = None

    def advance(self, to_ms: float, rate: float) -> list[Event]:
        """Every event from the last advance up to market time ``to_ms``, in time order."""
        out: list[Event] = []
        while True:
            boundary, arrival = self._next_boundary, self._next_arrival
            if boundary <= arrival:
                if boundary > to_ms:
                    break
                self._close_windows(boundary, out)
                self._next_boundary = boundary + SECOND_MS
            else:
                if arrival > to_ms:
                    break
                self._arrive(arrival, out)
                self._next_arrival = arrival + self._gap(rate)
        self.now = to_ms
        return out

    # -- arrivals ------------------------------------------------------------

    def _gap(self, rate: float) -> float:
        """Milliseconds to the next arrival of a Poisson process of ``rate`` per second."""
        return self._ins.rng.expovariate(rate / 1000.0) if rate > 0 else math.inf

    def _arrive(self, when: float, out: list[Event]) -> None:
        t = int(when)
        if self._has_trades and self._ins.rng.random() >= _QUOTE_SHARE:
            self._trade(t, out)
            return
        # The price walks in market time: the deviation grows with the square
        # root of the time since the last step.
        elapsed = max(when - self._last_step, 0.0) / 1000.0
        self._last_step = when
        self._factory._step(self._ins, self._sigma * math.sqrt(elapsed))
        if self._cluster is not StreamCluster.INDICES:
            self._set_quote()
        self._announce(t, out)

    def _announce(self, t: int, out: list[Event]) -> None:
        """Send the quote (an index: the value) now in force, and count it where bars do."""
        if self._cluster is StreamCluster.INDICES:
            value = self._factory._round(self._ins.price)
            out.append(self._event("V", self._factory._value_record("V", t, value)))
            self._record_print(t, value, 0.0)
            return
        out.append(self._quote_event(t))
        if self._cluster is StreamCluster.FOREX:
            self._record_print(t, self._mid, 1.0)
        elif self._cluster is StreamCluster.CRYPTO:
            book = self._factory._book_record(self._ins, t, self._bid, self._ask)
            out.append(self._event("XL2", book))

    def _quote_event(self, t: int) -> Event:
        body = self._factory._quote_record(self._symbol, self._ins, t, self._bid, self._ask)
        return self._event(
            "XQ" if self._cluster is StreamCluster.CRYPTO else self._quote_code, body
        )

    @property
    def _quote_code(self) -> str:
        return "C" if self._cluster is StreamCluster.FOREX else "Q"

    def _trade(self, t: int, out: list[Event]) -> None:
        factory = self._factory
        inside = self._bid + self._ins.rng.random() * (self._ask - self._bid)
        price = min(max(factory._round(inside), self._bid), self._ask)
        body = factory._trade_record(self._symbol, self._ins, t, price)
        out.append(self._event("XT" if self._cluster is StreamCluster.CRYPTO else "T", body))
        self._record_print(t, price, float(body["s"]))

    def _record_print(self, t: int, price: float, size: float) -> None:
        """Count a print (trade, quote or value) in the windows and the day."""
        self._last_print = price
        if self._second is None:
            self._second = Window.opening(t, SECOND_MS, price)
        if self._minute is None:
            self._minute = Window.opening(t, MINUTE_MS, price)
        self._second.add(price, size)
        self._minute.add(price, size)
        self._ins.day.add(price, size)

    def _set_quote(self) -> None:
        self._bid, self._ask = self._factory._spread(self._ins, self._ins.price)

    @property
    def _mid(self) -> float:
        return round((self._bid + self._ask) / 2, 8)

    # -- window closes -------------------------------------------------------

    def _close_windows(self, boundary: int, out: list[Event]) -> None:
        """What happens at the end of each market second, in order."""
        second, self._second = self._second, None
        if second is not None:
            self._send_bar(self._second_code, second, out)
            self._history.append((second.start, second.notional, second.volume))
            self._values(boundary, out)
        if boundary % MINUTE_MS == 0:
            minute, self._minute = self._minute, None
            if minute is not None:
                self._send_bar(self._minute_code, minute, out)
        if self._cluster is StreamCluster.STOCKS:
            self._stock_notices(boundary, out)
        # A new day starts at the first boundary past midnight.
        self._ins.day.roll(boundary, self._cluster)

    def _send_bar(self, code: str, window: Window, out: list[Event]) -> None:
        # Only windows generated from their first millisecond are sent whole.
        if window.start >= self._covered_from:
            out.append(
                self._event(code, self._factory._bar_record(self._symbol, self._ins, window))
            )

    def _values(self, t: int, out: list[Event]) -> None:
        """Fair market value (the last print) and value (the midpoint) of this second."""
        if self._cluster is StreamCluster.INDICES:
            return
        record = self._factory._value_record
        out.append(self._event("FMV", record("FMV", t, self._last_print)))
        out.append(self._event("LV", record("LV", t, self._mid)))

    def _stock_notices(self, boundary: int, out: list[Event]) -> None:
        """Limit up/limit down bands when they moved; now and then an imbalance."""
        if boundary % LULD_EVERY_MS == 0:
            while self._history and self._history[0][0] < boundary - LULD_HISTORY_MS:
                self._history.popleft()
            volume = sum(v for _, _, v in self._history)
            if volume > 0:
                reference = sum(n for _, n, _ in self._history) / volume
                if self._factory._luld_band(reference) != self._luld_bands:
                    out.append(self._luld(boundary, reference))
        if self._ins.rng.random() < _IMBALANCE_CHANCE_PER_SECOND:
            record = self._factory._imbalance_record(self._ins, boundary, self._mid)
            out.append(self._event("NOI", record))

    def _luld(self, t: int, reference: float) -> Event:
        self._luld_bands = self._factory._luld_band(reference)
        record = self._factory._luld_record(self._symbol, self._ins, t, reference)
        return self._event("LULD", record)

    def _event(self, code: str, body: Event) -> Event:
        return self._factory._event(code, self._symbol, body)


__all__ = ["SymbolMarket"]
