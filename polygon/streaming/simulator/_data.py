"""Generated market data: one plausible event for every stream the service documents.

Each event carries exactly the fields of its schema in the API specification
(``tests/data/websocket-api.json`` checks it), with the JSON type the
specification gives each field. Prices follow a random walk per symbol, so a
chart of generated trades looks like a market rather than noise; sequence
numbers (``q``) increase per symbol without being contiguous, as on the live
feed. Nothing here does I/O.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from polygon.enums import StreamCluster
from polygon.streaming._channels import event_codes, symbol_field

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

# Per-tick volatility of the random walk (a standard deviation of log price).
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
    """What the factory remembers about one symbol between events."""

    price: float
    day_open: float
    sequence: int = 0
    trade_id: int = 0
    day_volume: int = 0
    day_notional: float = 0.0


class EventFactory:
    """Makes plausible events for one cluster.

    ``make(code, symbol)`` returns one event as a dict, ready for ``orjson``.
    Given a ``seed`` the values are reproducible (timestamps aside).
    """

    def __init__(self, cluster: StreamCluster | str, seed: int | None = None) -> None:
        self._cluster = StreamCluster(cluster)
        self._rng = random.Random(seed)
        self._instruments: dict[str, _Instrument] = {}
        self._builders: dict[str, Callable[[str, _Instrument, int], Event]] = self._builder_table()

    @property
    def cluster(self) -> StreamCluster:
        return self._cluster

    @property
    def event_codes(self) -> tuple[str, ...]:
        return tuple(self._builders)

    def make(self, event_code: str, symbol: str) -> Event:
        """One event of type ``event_code`` for ``symbol`` (as it appears on the wire)."""
        builder = self._builders.get(event_code)
        if builder is None:
            valid = ", ".join(self._builders)
            raise ValueError(
                f"event code {event_code!r} is not served on {self._cluster.value}; "
                f"expected one of: {valid}"
            )
        event = builder(symbol, self._instrument(symbol), now_ms())
        # Put ``ev`` and the symbol first, as the service does: it reads better in logs.
        head = {"ev": event_code, symbol_field(self._cluster, event_code): symbol}
        return head | event

    # -- state ---------------------------------------------------------------

    def _instrument(self, symbol: str) -> _Instrument:
        instrument = self._instruments.get(symbol)
        if instrument is None:
            start = _START_PRICES.get(symbol)
            if start is None:
                low, high = _START_RANGE[self._cluster]
                start = math.exp(self._rng.uniform(math.log(low), math.log(high)))
            instrument = _Instrument(price=start, day_open=start)
            instrument.sequence = self._rng.randrange(1_000, 1_000_000)
            instrument.trade_id = self._rng.randrange(10_000, 100_000)
            self._instruments[symbol] = instrument
        return instrument

    def _step(self, instrument: _Instrument, scale: float = 1.0) -> float:
        sigma = _VOLATILITY[self._cluster] * scale
        instrument.price = max(instrument.price * math.exp(self._rng.gauss(0.0, sigma)), 1e-6)
        return instrument.price

    def _next_sequence(self, instrument: _Instrument) -> int:
        # Increasing and unique per symbol but with gaps, like the live feed.
        instrument.sequence += self._rng.randint(1, 4)
        return instrument.sequence

    def _round(self, price: float) -> float:
        if self._cluster is StreamCluster.FOREX:
            return round(price, 3 if price >= 20 else 5)
        if self._cluster is StreamCluster.CRYPTO:
            return round(price, 2 if price >= 100 else 4 if price >= 1 else 6)
        return round(price, 2 if price >= 1 else 4)

    def _spread(self, price: float) -> tuple[float, float]:
        """A bid and an ask around ``price``, at least one tick apart."""
        tick = {
            StreamCluster.FOREX: 0.00001 if price < 20 else 0.001,
            StreamCluster.CRYPTO: 0.01 if price >= 1 else 0.000001,
        }.get(self._cluster, 0.01)
        half = max(price * self._rng.uniform(0.00005, 0.0005), tick)
        bid = self._round(price - half)
        ask = max(self._round(price + half), self._round(bid + tick))
        return bid, ask

    def _bar(self, instrument: _Instrument, ticks: int) -> tuple[float, float, float, float]:
        """Open, high, low and close of a window: a few steps of the walk."""
        prices = [instrument.price]
        prices.extend(self._step(instrument) for _ in range(ticks))
        o, h, lo, c = prices[0], max(prices), min(prices), prices[-1]
        return self._round(o), self._round(h), self._round(lo), self._round(c)

    def _record_volume(self, instrument: _Instrument, volume: int, price: float) -> None:
        instrument.day_volume += volume
        instrument.day_notional += volume * price

    def _day_vwap(self, instrument: _Instrument) -> float:
        if instrument.day_volume == 0:
            return self._round(instrument.price)
        return self._round(instrument.day_notional / instrument.day_volume)

    def _builder_table(self) -> dict[str, Callable[[str, _Instrument, int], Event]]:
        by_cluster: dict[StreamCluster, dict[str, Callable[[str, _Instrument, int], Event]]] = {
            StreamCluster.STOCKS: {
                "T": self._stock_trade,
                "Q": self._stock_quote,
                "A": self._equity_second_aggregate,
                "AM": self._equity_minute_aggregate,
                "LULD": self._luld,
                "NOI": self._imbalance,
            },
            StreamCluster.OPTIONS: {
                "T": self._option_trade,
                "Q": self._option_quote,
                "A": self._equity_second_aggregate,
                "AM": self._equity_minute_aggregate,
            },
            StreamCluster.FOREX: {
                "C": self._forex_quote,
                "CA": self._pair_minute_aggregate,
                "CAS": self._pair_second_aggregate,
            },
            StreamCluster.CRYPTO: {
                "XT": self._crypto_trade,
                "XQ": self._crypto_quote,
                "XL2": self._crypto_book,
                "XA": self._pair_minute_aggregate,
                "XAS": self._pair_second_aggregate,
            },
            StreamCluster.INDICES: {
                "A": self._index_second_aggregate,
                "AM": self._index_minute_aggregate,
                "V": self._index_value,
            },
        }
        table = by_cluster[self._cluster]
        table.update(FMV=self._fair_market_value, LV=self._launchpad_value)
        # Only what the stream table says this cluster carries, in its order.
        return {code: table[code] for code in event_codes(self._cluster)}

    # -- stocks and options --------------------------------------------------

    def _stock_trade(self, symbol: str, ins: _Instrument, t: int) -> Event:
        price = self._round(self._step(ins))
        size = self._rng.choice(_TRADE_SIZES)
        self._record_volume(ins, size, price)
        exchange = self._rng.choice(_STOCK_EXCHANGES)
        ins.trade_id += self._rng.randint(1, 9)
        event: Event = {
            "x": exchange,
            "i": str(ins.trade_id),
            "z": _TAPES.get(symbol, 3),
            "p": price,
            "s": size,
            "c": list(self._rng.choice(_STOCK_TRADE_CONDITIONS)),
            "t": t,
            "q": self._next_sequence(ins),
        }
        # Only off-exchange prints carry the reporting facility and its timestamp.
        if exchange == _TRF_EXCHANGE:
            event["trfi"] = self._rng.choice(_TRF_IDS)
            event["trft"] = t - self._rng.randint(0, 3)
        return event

    def _stock_quote(self, symbol: str, ins: _Instrument, t: int) -> Event:
        bid, ask = self._spread(self._step(ins))
        return {
            "bx": self._rng.choice(_STOCK_EXCHANGES[:3] + _STOCK_EXCHANGES[6:]),
            "bp": bid,
            "bs": self._rng.randint(1, 20),
            "ax": self._rng.choice(_STOCK_EXCHANGES[:3] + _STOCK_EXCHANGES[6:]),
            "ap": ask,
            "as": self._rng.randint(1, 20),
            "c": 0 if self._rng.random() < 0.9 else 1,
            "i": [] if self._rng.random() < 0.95 else [604],
            "t": t,
            "q": self._next_sequence(ins),
            "z": _TAPES.get(symbol, 3),
        }

    def _option_trade(self, symbol: str, ins: _Instrument, t: int) -> Event:
        size = self._rng.choice((1, 1, 1, 2, 5, 10, 20, 50))
        price = self._round(self._step(ins))
        self._record_volume(ins, size, price)
        return {
            "x": self._rng.choice(_OPTION_EXCHANGES),
            "p": price,
            "s": size,
            "c": [self._rng.choice((209, 219, 227, 229, 232, 233))],
            "t": t,
            "q": self._next_sequence(ins),
        }

    def _option_quote(self, symbol: str, ins: _Instrument, t: int) -> Event:
        bid, ask = self._spread(self._step(ins))
        return {
            "bx": self._rng.choice(_OPTION_EXCHANGES),
            "ax": self._rng.choice(_OPTION_EXCHANGES),
            "bp": bid,
            "ap": ask,
            "bs": self._rng.randint(1, 200),
            "as": self._rng.randint(1, 200),
            "t": t,
            "q": self._next_sequence(ins),
        }

    def _equity_second_aggregate(self, symbol: str, ins: _Instrument, t: int) -> Event:
        return self._equity_aggregate(symbol, ins, t, 1_000)

    def _equity_minute_aggregate(self, symbol: str, ins: _Instrument, t: int) -> Event:
        return self._equity_aggregate(symbol, ins, t, 60_000)

    def _equity_aggregate(self, symbol: str, ins: _Instrument, t: int, window: int) -> Event:
        o, h, lo, c = self._bar(ins, 4 if window == 1_000 else 20)
        trades = self._rng.randint(1, 40 if window == 1_000 else 600)
        unit = 100 if self._cluster is StreamCluster.STOCKS else 1
        volume = trades * self._rng.randint(1, 3) * unit
        vwap = self._round((o + h + lo + c) / 4)
        self._record_volume(ins, volume, vwap)
        start = t // window * window - window
        event: Event = {
            "v": volume,
            "av": ins.day_volume,
            "op": self._round(ins.day_open),
            "vw": vwap,
            "o": o,
            "c": c,
            "h": h,
            "l": lo,
            "a": self._day_vwap(ins),
            "z": max(volume // trades, 1),
            "s": start,
            "e": start + window,
        }
        # The service leaves ``otc`` off unless it is true.
        if self._cluster is StreamCluster.STOCKS and symbol in OTC_SYMBOLS:
            event["otc"] = True
        return event

    def _luld(self, symbol: str, ins: _Instrument, t: int) -> Event:
        reference = self._step(ins, 0.2)
        return {
            "h": self._round(reference * 1.05),
            "l": self._round(reference * 0.95),
            "i": [self._rng.choice((17, 21, 22))],
            "z": _TAPES.get(symbol, 3),
            "t": t,
            "q": self._next_sequence(ins),
        }

    def _imbalance(self, symbol: str, ins: _Instrument, t: int) -> Event:
        auction, at = self._rng.choice(_AUCTION_TYPES)
        paired = self._rng.randint(1, 500) * 100
        return {
            "t": t,
            "at": at,
            "a": auction,
            "i": self._next_sequence(ins),
            "x": self._rng.choice((10, 11, 12, 19)),
            "o": self._rng.randint(1, 300) * 100,
            "p": paired,
            "b": self._round(self._step(ins, 0.5)),
        }

    # -- forex and crypto ----------------------------------------------------

    def _forex_quote(self, symbol: str, ins: _Instrument, t: int) -> Event:
        bid, ask = self._spread(self._step(ins))
        return {"x": _FOREX_EXCHANGE, "a": ask, "b": bid, "t": t}

    def _pair_second_aggregate(self, symbol: str, ins: _Instrument, t: int) -> Event:
        return self._pair_aggregate(ins, t, 1_000)

    def _pair_minute_aggregate(self, symbol: str, ins: _Instrument, t: int) -> Event:
        return self._pair_aggregate(ins, t, 60_000)

    def _pair_aggregate(self, ins: _Instrument, t: int, window: int) -> Event:
        o, h, lo, c = self._bar(ins, 4 if window == 1_000 else 20)
        trades = self._rng.randint(1, 30 if window == 1_000 else 400)
        volume = trades * self._rng.randint(1, 5)
        start = t // window * window - window
        event: Event = {
            "o": o,
            "c": c,
            "h": h,
            "l": lo,
            "v": volume,
            "s": start,
            "e": start + window,
        }
        if self._cluster is StreamCluster.CRYPTO:
            event["vw"] = self._round((o + h + lo + c) / 4)
            event["z"] = max(volume // trades, 1)
        return event

    def _crypto_size(self) -> float:
        return round(self._rng.lognormvariate(-2.0, 1.5), 8)

    def _crypto_trade(self, symbol: str, ins: _Instrument, t: int) -> Event:
        ins.trade_id += self._rng.randint(1, 5)
        return {
            "p": self._round(self._step(ins)),
            "t": t,
            "s": self._crypto_size(),
            "c": [self._rng.choice((1, 2))],
            "i": ins.trade_id,
            "x": self._rng.choice(_CRYPTO_EXCHANGES),
            "r": t + self._rng.randint(5, 150),
        }

    def _crypto_quote(self, symbol: str, ins: _Instrument, t: int) -> Event:
        bid, ask = self._spread(self._step(ins))
        return {
            "bp": bid,
            "bs": self._crypto_size(),
            "ap": ask,
            "as": self._crypto_size(),
            "t": t,
            "x": self._rng.choice(_CRYPTO_EXCHANGES),
            "r": t + self._rng.randint(5, 150),
        }

    def _crypto_book(self, symbol: str, ins: _Instrument, t: int) -> Event:
        bid, ask = self._spread(self._step(ins))
        depth = self._rng.randint(3, 10)
        step = max(ins.price * 0.0001, 0.000001)
        bids = [[self._round(bid - n * step), self._crypto_size()] for n in range(depth)]
        asks = [[self._round(ask + n * step), self._crypto_size()] for n in range(depth)]
        return {
            "t": t,
            "r": t + self._rng.randint(5, 150),
            "x": self._rng.choice(_CRYPTO_EXCHANGES),
            "b": bids,
            "a": asks,
        }

    # -- indices and the value streams ---------------------------------------

    def _index_second_aggregate(self, symbol: str, ins: _Instrument, t: int) -> Event:
        return self._index_aggregate(ins, t, 1_000)

    def _index_minute_aggregate(self, symbol: str, ins: _Instrument, t: int) -> Event:
        return self._index_aggregate(ins, t, 60_000)

    def _index_aggregate(self, ins: _Instrument, t: int, window: int) -> Event:
        o, h, lo, c = self._bar(ins, 4 if window == 1_000 else 20)
        start = t // window * window - window
        return {
            "op": self._round(ins.day_open),
            "o": o,
            "c": c,
            "h": h,
            "l": lo,
            "s": start,
            "e": start + window,
        }

    def _index_value(self, symbol: str, ins: _Instrument, t: int) -> Event:
        return {"val": self._round(self._step(ins)), "t": t}

    def _fair_market_value(self, symbol: str, ins: _Instrument, t: int) -> Event:
        return {"fmv": self._round(self._step(ins)), "t": t}

    def _launchpad_value(self, symbol: str, ins: _Instrument, t: int) -> Event:
        return {"val": self._round(self._step(ins)), "t": t}


__all__ = ["OTC_SYMBOLS", "EventFactory", "default_symbols", "now_ms"]
