"""The one table of streams.

Each row says, for one stream: the suffix of its ``subscribe_*`` /
``unsubscribe_*`` methods, its event code, the clusters that serve it and a
one-line description. The clients, the simulator, the command line and the
docs all read this table, so adding a stream is one row here plus its two thin
methods on each client.
"""

from __future__ import annotations

from dataclasses import dataclass

from polygon.enums import StreamCluster

STOCKS = StreamCluster.STOCKS
OPTIONS = StreamCluster.OPTIONS
FOREX = StreamCluster.FOREX
CRYPTO = StreamCluster.CRYPTO
INDICES = StreamCluster.INDICES


@dataclass(frozen=True)
class Stream:
    """One subscribable stream."""

    name: str
    event_code: str
    clusters: frozenset[StreamCluster]
    description: str

    def serves(self, cluster: StreamCluster) -> bool:
        return cluster in self.clusters


def _stream(name: str, code: str, clusters: tuple[StreamCluster, ...], description: str) -> Stream:
    return Stream(name, code, frozenset(clusters), description)


STREAMS: tuple[Stream, ...] = (
    _stream(
        "fair_market_value",
        "FMV",
        (STOCKS, OPTIONS, FOREX, CRYPTO),
        "Fair market value, computed by the provider (business plans).",
    ),
    _stream("stock_trades", "T", (STOCKS,), "Every trade on US stock exchanges."),
    _stream("stock_quotes", "Q", (STOCKS,), "National best bid and offer for stocks."),
    _stream("stock_minute_aggregates", "AM", (STOCKS,), "One-minute OHLCV bars for stocks."),
    _stream("stock_second_aggregates", "A", (STOCKS,), "One-second OHLCV bars for stocks."),
    _stream(
        "stock_limit_up_limit_down",
        "LULD",
        (STOCKS,),
        "Limit up / limit down price bands for stocks.",
    ),
    _stream("stock_imbalances", "NOI", (STOCKS,), "Opening and closing auction imbalances."),
    _stream("option_trades", "T", (OPTIONS,), "Every trade on option contracts."),
    _stream("option_quotes", "Q", (OPTIONS,), "Best bid and offer for option contracts."),
    _stream(
        "option_minute_aggregates", "AM", (OPTIONS,), "One-minute OHLCV bars for option contracts."
    ),
    _stream(
        "option_second_aggregates", "A", (OPTIONS,), "One-second OHLCV bars for option contracts."
    ),
    _stream("forex_quotes", "C", (FOREX,), "Quotes for currency pairs."),
    _stream("forex_minute_aggregates", "CA", (FOREX,), "One-minute OHLCV bars for currency pairs."),
    _stream(
        "forex_second_aggregates", "CAS", (FOREX,), "One-second OHLCV bars for currency pairs."
    ),
    _stream("crypto_trades", "XT", (CRYPTO,), "Every trade on crypto pairs."),
    _stream("crypto_quotes", "XQ", (CRYPTO,), "Best bid and offer for crypto pairs."),
    _stream("crypto_minute_aggregates", "XA", (CRYPTO,), "One-minute OHLCV bars for crypto pairs."),
    _stream(
        "crypto_second_aggregates", "XAS", (CRYPTO,), "One-second OHLCV bars for crypto pairs."
    ),
    _stream("crypto_level2_book", "XL2", (CRYPTO,), "Level 2 order book snapshots for crypto."),
    _stream("indices_minute_aggregates", "AM", (INDICES,), "One-minute OHLC bars for indices."),
    _stream("indices_second_aggregates", "A", (INDICES,), "One-second OHLC bars for indices."),
    _stream("index_value", "V", (INDICES,), "The value of an index, as it is computed."),
)

STREAMS_BY_NAME: dict[str, Stream] = {stream.name: stream for stream in STREAMS}

# Launchpad value (LV) and launchpad aggregates exist on their own host; the
# simulator serves them, the clients do not have methods for them yet.
EXTRA_EVENT_CODES: dict[StreamCluster, tuple[str, ...]] = {
    STOCKS: ("LV",),
    OPTIONS: ("LV",),
    FOREX: ("LV",),
    CRYPTO: ("LV",),
    INDICES: (),
}


def event_codes(cluster: StreamCluster) -> tuple[str, ...]:
    """Every event code a cluster can carry (besides ``status``), in table order."""
    codes = [s.event_code for s in STREAMS if s.serves(cluster)]
    codes.extend(EXTRA_EVENT_CODES[cluster])
    return tuple(dict.fromkeys(codes))


_SYMBOL_FIELD_OVERRIDES: dict[tuple[StreamCluster, str], str] = {
    (STOCKS, "LULD"): "T",
    (STOCKS, "NOI"): "T",
    (INDICES, "V"): "T",
    (FOREX, "C"): "p",
    (FOREX, "CA"): "pair",
    (FOREX, "CAS"): "pair",
    (CRYPTO, "XT"): "pair",
    (CRYPTO, "XQ"): "pair",
    (CRYPTO, "XL2"): "pair",
    (CRYPTO, "XA"): "pair",
    (CRYPTO, "XAS"): "pair",
}


def symbol_field(cluster: StreamCluster, event_code: str) -> str:
    """The field of an event that holds its symbol (``sym`` unless noted)."""
    return _SYMBOL_FIELD_OVERRIDES.get((cluster, event_code), "sym")
