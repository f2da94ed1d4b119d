"""Event records: one plausible event for every stream the service documents.

Each event carries exactly the fields of its schema in the API specification
(``tests/data/websocket-api.json`` checks it), with the JSON type the
specification gives each field. :class:`EventFactory` builds the records from
prices it is given (the generated market in ``_market.py`` decides those) and
also makes one-off events for tests (:meth:`EventFactory.make`). Sequence
numbers (``q``) increase per symbol without being contiguous, as on the live
feed. Nothing here does I/O.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from polygon.enums import StreamCluster
from polygon.streaming._channels import event_codes, symbol_field
from polygon.streaming.simulator._bars import MINUTE_MS, SECOND_MS, DayTally, Window

Event = dict[str, Any]

_DEFAULT_SYMBOLS: dict[StreamCluster, tuple[str, ...]] = {
    StreamCluster.STOCKS: (
        "AAPL",
        "MSFT",
        "NVDA",
        "AMD",
        "TSLA",
        "AMZN",
        "GOOGL",
        "META",
        "SPY",
        "QQQ",
        "BRK.B",
    ),
    StreamCluster.OPTIONS: (
        "O:SPY241220P00720000",
        "O:AAPL250117C00200000",
        "O:SPY250620C00550000",
        "O:QQQ250321P00480000",
        "O:TSLA250117C00250000",
        "O:NVDA250620C00130000",
        "O:AMZN250117P00180000",
        "O:MSFT250321C00450000",
    ),
    StreamCluster.FOREX: (
        "EUR/USD",
        "GBP/USD",
        "USD/JPY",
        "AUD/USD",
        "USD/CAD",
        "USD/CHF",
        "NZD/USD",
        "EUR/GBP",
    ),
    StreamCluster.CRYPTO: (
        "BTC-USD",
        "ETH-USD",
        "SOL-USD",
        "XRP-USD",
        "DOGE-USD",
        "ADA-USD",
        "LTC-USD",
        "AVAX-USD",
    ),
    StreamCluster.INDICES: ("I:SPX", "I:NDX", "I:DJI", "I:VIX", "I:RUT"),
}

# Rough recent levels, so generated prices look familiar; anything else starts
# at a random level that suits its cluster.
_START_PRICES: dict[str, float] = {
    "AAPL": 190.0, "MSFT": 420.0, "NVDA": 120.0, "AMD": 160.0, "TSLA": 240.0, "AMZN": 185.0,
    "GOOGL": 170.0, "META": 500.0, "SPY": 540.0, "QQQ": 460.0, "BRK.B": 410.0,
    "EUR/USD": 1.085, "GBP/USD": 1.27, "USD/JPY": 151.5, "AUD/USD": 0.66, "USD/CAD": 1.36,
    "USD/CHF": 0.90, "NZD/USD": 0.60, "EUR/GBP": 0.855,
    "BTC-USD": 65000.0, "ETH-USD": 3400.0, "SOL-USD": 150.0, "XRP-USD": 0.52,
    "DOGE-USD": 0.15, "ADA-USD": 0.45, "LTC-USD": 80.0, "AVAX-USD": 35.0,
    "I:SPX": 5400.0, "I:NDX": 19000.0, "I:DJI": 39000.0, "I:VIX": 14.0, "I:RUT": 2100.0,
}  # fmt: skip

_START_RANGE: dict[StreamCluster, tuple[float, float]] = {
    StreamCluster.STOCKS: (10.0, 400.0),
    StreamCluster.OPTIONS: (0.5, 25.0),
    StreamCluster.FOREX: (0.5, 2.0),
    StreamCluster.CRYPTO: (0.1, 500.0),
    StreamCluster.INDICES: (100.0, 5000.0),
}

# Volatility of the price walk: the standard deviation of the log price over one
# second of market time (a one-off event from make() counts as one second).
_VOLATILITY: dict[StreamCluster, float] = {
    StreamCluster.STOCKS: 0.0004,
    StreamCluster.OPTIONS: 0.003,
    StreamCluster.FOREX: 0.00005,
    StreamCluster.CRYPTO: 0.0008,
    StreamCluster.INDICES: 0.0002,
}

# Tape per listing venue: 1 = NYSE, 2 = NYSE Arca/American, 3 = Nasdaq.
_TAPES: dict[str, int] = {"SPY": 2, "BRK.B": 1}
# Stock exchange ids; 4 is the FINRA trade reporting facility (off-exchange),
# which is why it weighs most: that is where about a third of volume prints.
_STOCK_EXCHANGES = (1, 2, 3, 4, 4, 4, 7, 8, 10, 11, 12, 15, 17, 19, 21)
_TRF_EXCHANGE = 4
_TRF_IDS = (201, 202, 203)
_OPTION_EXCHANGES = (300, 301, 302, 303, 304, 307, 308, 309, 312, 313, 316, 319, 322, 323)
_CRYPTO_EXCHANGES = (1, 2, 4, 6, 23)
_FOREX_EXCHANGE = 48
_TRADE_SIZES = (100, 100, 100, 200, 300, 500, 1000, 1, 5, 10, 25, 50)
_STOCK_TRADE_CONDITIONS = ((), (12,), (37,), (14, 41), (12, 37))
_AUCTION_TYPES = (("O", 930), ("M", 930), ("H", 1130), ("C", 1600), ("P", 1600), ("R", 1600))
# Some tickers that trade over the counter, so aggregates carry ``otc`` for them
# (the service leaves the field off otherwise).
OTC_SYMBOLS = frozenset({"TCEHY", "NSRGY", "RHHBY", "BAYRY", "NTDOY"})


def default_symbols(cluster: StreamCluster | str) -> tuple[str, ...]:
    """The symbols a wildcard subscription (``T.*``) is generated for."""
    return _DEFAULT_SYMBOLS[StreamCluster(cluster)]


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass
class _Instrument:
    """What the factory remembers about one symbol between events.

    Each symbol draws from its own random generator, so what one symbol does
    never depends on which other symbols are being generated.
    """

    rng: random.Random
    price: float
    sequence: int
    trade_id: int
    day: DayTally = field(default_factory=DayTally)


class EventFactory:
    """Makes plausible events for one cluster.

    ``make(code, symbol)`` returns one event as a dict, ready for ``orjson``,
    stamped with the time of ``clock`` (Unix ms; the wall clock by default).
    Given a ``seed`` the values are reproducible (timestamps aside). The
    simulator's generated market builds its events with the same factory.
    """

    def __init__(
        self,
        cluster: StreamCluster | str,
        seed: int | None = None,
        clock: Callable[[], int] | None = None,
    ) -> None:
        self._cluster = StreamCluster(cluster)
        self._seed = seed
        self._clock = clock or now_ms
        self._instruments: dict[str, _Instrument] = {}
        self._makers: dict[str, Callable[[str, _Instrument, int], Event]] = self._maker_table()

    @property
    def cluster(self) -> StreamCluster:
        return self._cluster

    @property
    def event_codes(self) -> tuple[str, ...]:
        return tuple(self._makers)

    def make(self, event_code: str, symbol: str) -> Event:
        """One event of type ``event_code`` for ``symbol`` (as it appears on the wire)."""
        maker = self._makers.get(event_code)
        if maker is None:
            valid = ", ".join(self._makers)
            raise ValueError(
                f"event code {event_code!r} is not served on {self._cluster.value}; "
                f"expected one of: {valid}"
            )
        return self._event(
            event_code, symbol, maker(symbol, self._instrument(symbol), self._clock())
        )

    # -- state shared with the generated market ------------------------------

    def _event(self, event_code: str, symbol: str, body: Event) -> Event:
        # Put ``ev`` and the symbol first, as the service does: it reads better in logs.
        head = {"ev": event_code, symbol_field(self._cluster, event_code): symbol}
        return head | body

    def _instrument(self, symbol: str) -> _Instrument:
        instrument = self._instruments.get(symbol)
        if instrument is None:
            # A string seed is hashed the same way in every process (unlike hash()).
            rng = random.Random(
                None if self._seed is None else f"{self._seed}/{self._cluster.value}/{symbol}"
            )
            start = _START_PRICES.get(symbol)
            if start is None:
                low, high = _START_RANGE[self._cluster]
                start = math.exp(rng.uniform(math.log(low), math.log(high)))
            instrument = _Instrument(
                rng=rng,
                price=start,
                sequence=rng.randrange(1_000, 1_000_000),
                trade_id=rng.randrange(10_000, 100_000),
            )
            self._instruments[symbol] = instrument
        return instrument

    def _step(self, instrument: _Instrument, sigma: float) -> float:
        """Move the symbol's price one step of a log-normal walk of deviation ``sigma``."""
        instrument.price = max(instrument.price * math.exp(instrument.rng.gauss(0.0, sigma)), 1e-6)
        return instrument.price

    def _next_sequence(self, instrument: _Instrument) -> int:
        # Increasing and unique per symbol but with gaps, like the live feed.
        instrument.sequence += instrument.rng.randint(1, 4)
        return instrument.sequence

    def _round(self, price: float) -> float:
        if self._cluster is StreamCluster.FOREX:
            return round(price, 3 if price >= 20 else 5)
        if self._cluster is StreamCluster.CRYPTO:
            return round(price, 2 if price >= 100 else 4 if price >= 1 else 6)
        return round(price, 2 if price >= 1 else 4)

    def _tick(self, price: float) -> float:
        """The smallest price increment at ``price``."""
        if self._cluster is StreamCluster.FOREX:
            return 0.00001 if price < 20 else 0.001
        if self._cluster is StreamCluster.CRYPTO:
            return 0.01 if price >= 100 else 0.0001 if price >= 1 else 0.000001
        return 0.01 if price >= 1 else 0.0001

    def _spread(self, instrument: _Instrument, price: float) -> tuple[float, float]:
        """A bid and an ask around ``price``, at least one tick apart."""
        tick = self._tick(price)
        half = max(price * instrument.rng.uniform(0.00005, 0.0005), tick)
        bid = max(self._round(price - half), tick)
        ask = max(self._round(price + half), self._round(bid + tick))
        return bid, ask

    def _record_day(self, instrument: _Instrument, t: int, price: float, size: float) -> None:
        instrument.day.roll(t, self._cluster)
        instrument.day.add(price, size)

    # -- records: the fields of each event, from the prices given -------------

    def _trade_size(self, instrument: _Instrument) -> float:
        rng = instrument.rng
        if self._cluster is StreamCluster.CRYPTO:
            return round(rng.lognormvariate(-2.0, 1.5), 8) or 0.00000001
        if self._cluster is StreamCluster.OPTIONS:
            return rng.choice((1, 1, 1, 2, 5, 10, 20, 50))
        return rng.choice(_TRADE_SIZES)

    def _trade_record(self, symbol: str, ins: _Instrument, t: int, price: float) -> Event:
        """A trade of a random size at ``price`` (the caller records it in the day)."""
        rng = ins.rng
        size = self._trade_size(ins)
        if self._cluster is StreamCluster.CRYPTO:
            ins.trade_id += rng.randint(1, 5)
            return {
                "p": price,
                "t": t,
                "s": size,
                "c": [rng.choice((1, 2))],
                "i": ins.trade_id,
                "x": rng.choice(_CRYPTO_EXCHANGES),
                "r": t + rng.randint(5, 150),
            }
        if self._cluster is StreamCluster.OPTIONS:
            return {
                "x": rng.choice(_OPTION_EXCHANGES),
                "p": price,
                "s": size,
                "c": [rng.choice((209, 219, 227, 229, 232, 233))],
                "t": t,
                "q": self._next_sequence(ins),
            }
        exchange = rng.choice(_STOCK_EXCHANGES)
        ins.trade_id += rng.randint(1, 9)
        event: Event = {
            "x": exchange,
            "i": str(ins.trade_id),
            "z": _TAPES.get(symbol, 3),
            "p": price,
            "s": size,
            "c": list(rng.choice(_STOCK_TRADE_CONDITIONS)),
            "t": t,
            "q": self._next_sequence(ins),
        }
        # Only off-exchange prints carry the reporting facility and its timestamp.
        if exchange == _TRF_EXCHANGE:
            event["trfi"] = rng.choice(_TRF_IDS)
            event["trft"] = t - rng.randint(0, 3)
        return event

    def _quote_record(self, symbol: str, ins: _Instrument, t: int, bid: float, ask: float) -> Event:
        rng = ins.rng
        if self._cluster is StreamCluster.FOREX:
            return {"x": _FOREX_EXCHANGE, "a": ask, "b": bid, "t": t}
        if self._cluster is StreamCluster.CRYPTO:
            return {
                "bp": bid,
                "bs": self._trade_size(ins),
                "ap": ask,
                "as": self._trade_size(ins),
                "t": t,
                "x": rng.choice(_CRYPTO_EXCHANGES),
                "r": t + rng.randint(5, 150),
            }
        if self._cluster is StreamCluster.OPTIONS:
            return {
                "bx": rng.choice(_OPTION_EXCHANGES),
                "ax": rng.choice(_OPTION_EXCHANGES),
                "bp": bid,
                "ap": ask,
                "bs": rng.randint(1, 200),
                "as": rng.randint(1, 200),
                "t": t,
                "q": self._next_sequence(ins),
            }
        venues = _STOCK_EXCHANGES[:3] + _STOCK_EXCHANGES[6:]
        return {
            "bx": rng.choice(venues),
            "bp": bid,
            "bs": rng.randint(1, 20),
            "ax": rng.choice(venues),
            "ap": ask,
            "as": rng.randint(1, 20),
            "c": 0 if rng.random() < 0.9 else 1,
            "i": [] if rng.random() < 0.95 else [604],
            "t": t,
            "q": self._next_sequence(ins),
            "z": _TAPES.get(symbol, 3),
        }

    def _book_record(self, ins: _Instrument, t: int, bid: float, ask: float) -> Event:
        """A level-2 book whose best levels are ``bid`` and ``ask``: never crossed."""
        rng = ins.rng
        depth = rng.randint(3, 10)
        step = max(self._tick(bid), bid * 0.0001)
        bids = [[self._round(bid - n * step), self._trade_size(ins)] for n in range(depth)]
        asks = [[self._round(ask + n * step), self._trade_size(ins)] for n in range(depth)]
        # Deep levels of a cheap coin could round to zero or onto each other.
        bids = [
            level
            for n, level in enumerate(bids)
            if level[0] > 0 and (n == 0 or level[0] < bids[n - 1][0])
        ]
        asks = [level for n, level in enumerate(asks) if n == 0 or level[0] > asks[n - 1][0]]
        return {
            "t": t,
            "r": t + rng.randint(5, 150),
            "x": rng.choice(_CRYPTO_EXCHANGES),
            "b": bids,
            "a": asks,
        }

    def _bar_record(self, symbol: str, ins: _Instrument, window: Window) -> Event:
        """The aggregate of ``window``, as the cluster's bars carry it."""
        ohlc: Event = {
            "o": float(window.open),
            "c": float(window.close),
            "h": float(window.high),
            "l": float(window.low),
        }
        span = {"s": window.start, "e": window.end}
        if self._cluster is StreamCluster.INDICES:
            return {"op": self._round(ins.day.open or window.open)} | ohlc | span
        volume = round(window.volume)
        if self._cluster is StreamCluster.FOREX:
            return ohlc | {"v": volume} | span
        # The specification makes sizes in bars integers: crypto's fractional
        # sizes are rounded, so a window of small trades may show 0.
        average_size = round(window.volume / window.count) if window.count else 0
        if self._cluster is StreamCluster.CRYPTO:
            return ohlc | {"v": volume} | span | {"vw": _vwap(window.vwap), "z": average_size}
        event: Event = {
            "v": volume,
            "av": round(ins.day.volume),
            "op": self._round(ins.day.open or window.open),
            "vw": _vwap(window.vwap),
            **ohlc,
            "a": _vwap(ins.day.vwap),
            "z": average_size,
            **span,
        }
        # The service leaves ``otc`` off unless it is true.
        if self._cluster is StreamCluster.STOCKS and symbol in OTC_SYMBOLS:
            event["otc"] = True
        return event

    def _luld_band(self, reference: float) -> tuple[float, float]:
        """Limit up/limit down prices around ``reference``: 5 %, or 20 % under $3."""
        band = 0.05 if reference >= 3 else 0.20
        return self._round(reference * (1 + band)), self._round(reference * (1 - band))

    def _luld_record(self, symbol: str, ins: _Instrument, t: int, reference: float) -> Event:
        high, low = self._luld_band(reference)
        return {
            "h": high,
            "l": low,
            "i": [ins.rng.choice((17, 21, 22))],
            "z": _TAPES.get(symbol, 3),
            "t": t,
            "q": self._next_sequence(ins),
        }

    def _imbalance_record(self, ins: _Instrument, t: int, price: float) -> Event:
        rng = ins.rng
        auction, at = rng.choice(_AUCTION_TYPES)
        return {
            "t": t,
            "at": at,
            "a": auction,
            "i": self._next_sequence(ins),
            "x": rng.choice((10, 11, 12, 19)),
            "o": rng.randint(1, 300) * 100,
            "p": rng.randint(1, 500) * 100,
            "b": self._round(price),
        }

    def _value_record(self, event_code: str, t: int, value: float) -> Event:
        """An index value (``V``), a fair market value (``FMV``) or a value (``LV``)."""
        return {"fmv" if event_code == "FMV" else "val": float(value), "t": t}

    # -- one-off events for make() ------------------------------------------

    def _maker_table(self) -> dict[str, Callable[[str, _Instrument, int], Event]]:
        trade, quote = self._make_trade, self._make_quote
        second, minute = self._make_bar(SECOND_MS), self._make_bar(MINUTE_MS)
        by_cluster: dict[StreamCluster, dict[str, Callable[[str, _Instrument, int], Event]]] = {
            StreamCluster.STOCKS: {"T": trade, "Q": quote, "A": second, "AM": minute},
            StreamCluster.OPTIONS: {"T": trade, "Q": quote, "A": second, "AM": minute},
            StreamCluster.FOREX: {"C": quote, "CA": minute, "CAS": second},
            StreamCluster.CRYPTO: {"XT": trade, "XQ": quote, "XA": minute, "XAS": second},
            StreamCluster.INDICES: {"A": second, "AM": minute},
        }
        table = by_cluster[self._cluster]
        table.update(
            LULD=self._make_luld,
            NOI=self._make_imbalance,
            XL2=self._make_book,
            FMV=self._make_value("FMV"),
            LV=self._make_value("LV"),
            V=self._make_value("V"),
        )
        # Only what the stream table says this cluster carries, in its order.
        return {code: table[code] for code in event_codes(self._cluster)}

    def _make_trade(self, symbol: str, ins: _Instrument, t: int) -> Event:
        price = self._round(self._step(ins, _VOLATILITY[self._cluster]))
        event = self._trade_record(symbol, ins, t, price)
        self._record_day(ins, t, price, event["s"])
        return event

    def _make_quote(self, symbol: str, ins: _Instrument, t: int) -> Event:
        bid, ask = self._spread(ins, self._step(ins, _VOLATILITY[self._cluster]))
        return self._quote_record(symbol, ins, t, bid, ask)

    def _make_book(self, symbol: str, ins: _Instrument, t: int) -> Event:
        bid, ask = self._spread(ins, self._step(ins, _VOLATILITY[self._cluster]))
        return self._book_record(ins, t, bid, ask)

    def _make_bar(self, length: int) -> Callable[[str, _Instrument, int], Event]:
        """Makes bars of ``length`` ms: the window that ended last, a few prints of the walk."""

        def make(symbol: str, ins: _Instrument, t: int) -> Event:
            window = Window.opening(t - length, length, self._round(ins.price))
            sigma = _VOLATILITY[self._cluster]
            for _ in range(ins.rng.randint(1, 20)):
                price = self._round(self._step(ins, sigma))
                if self._cluster is StreamCluster.INDICES:
                    size = 0.0
                elif self._cluster is StreamCluster.FOREX:
                    size = 1.0  # forex bars count quotes
                else:
                    size = float(self._trade_size(ins))
                window.add(price, size)
                self._record_day(ins, window.start, price, size)
            return self._bar_record(symbol, ins, window)

        return make

    def _make_luld(self, symbol: str, ins: _Instrument, t: int) -> Event:
        return self._luld_record(symbol, ins, t, self._step(ins, _VOLATILITY[self._cluster] / 5))

    def _make_imbalance(self, symbol: str, ins: _Instrument, t: int) -> Event:
        return self._imbalance_record(ins, t, self._step(ins, _VOLATILITY[self._cluster] / 2))

    def _make_value(self, event_code: str) -> Callable[[str, _Instrument, int], Event]:
        def make(symbol: str, ins: _Instrument, t: int) -> Event:
            value = self._round(self._step(ins, _VOLATILITY[self._cluster]))
            return self._value_record(event_code, t, value)

        return make


def _vwap(value: float) -> float:
    return round(value, 6)


__all__ = ["OTC_SYMBOLS", "EventFactory", "default_symbols", "now_ms"]
