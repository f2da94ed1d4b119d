"""Types of the events the streams deliver.

Every event is a plain ``dict`` at run time; these ``TypedDict`` classes only
tell your type checker and editor which keys it has and what they hold. There
is no cost: nothing is converted or validated.

Each subscribe method's handler is typed with its own event type, so a handler
can be written against it::

    from polygon.streaming.types import StockTradeEvent

    def on_trade(trade: StockTradeEvent) -> None:
        print(trade["sym"], trade["p"], trade["s"])

    await client.subscribe_stock_trades(["AAPL"], handler_function=on_trade)

A handler that takes several kinds of event can narrow one with
:func:`is_event`, which compares the ``ev`` code. Field meanings follow the
public WebSocket API specification; timestamps are Unix milliseconds unless
noted. Some fields are only present sometimes (marked "optional").
"""

from collections.abc import Callable, Mapping
from typing import Any, Literal, TypeGuard, TypeVar, Union

# Both from typing_extensions: before Python 3.11, typing.TypedDict does not know
# NotRequired and counts every such key as required.
from typing_extensions import NotRequired, TypedDict

# -- status ----------------------------------------------------------------------------


class StatusEvent(TypedDict):
    """A message from the server about the session itself (``ev == "status"``).

    :ivar status: ``connected``, ``auth_success``, ``auth_failed``,
        ``auth_timeout``, ``success`` (a subscription acknowledged), ``error``,
        ``max_connections``, ``force_disconnect``, ``slow_consumer``, ...
    :ivar message: a human-readable explanation.
    """

    ev: Literal["status"]
    status: str
    message: str


# -- stocks ------------------------------------------------------------------------------


class StockTradeEvent(TypedDict):
    """A trade on a US stock exchange (``T``, stocks cluster).

    :ivar sym: the ticker.
    :ivar x: the exchange ID.
    :ivar i: the trade ID.
    :ivar z: the tape (1 = NYSE, 2 = AMEX, 3 = Nasdaq).
    :ivar p: the price.
    :ivar s: the size, in shares.
    :ivar c: the trade conditions (optional).
    :ivar t: the SIP timestamp.
    :ivar q: the sequence number: increasing per ticker, not always consecutive.
    :ivar trfi: the Trade Reporting Facility ID (optional: off-exchange trades).
    :ivar trft: the TRF timestamp (optional: off-exchange trades).
    """

    ev: Literal["T"]
    sym: str
    x: int
    i: str
    z: int
    p: float
    s: int
    c: NotRequired[list[int]]
    t: int
    q: int
    trfi: NotRequired[int]
    trft: NotRequired[int]


StockQuoteEvent = TypedDict(
    "StockQuoteEvent",
    {
        "ev": Literal["Q"],
        "sym": str,
        "bx": int,
        "bp": float,
        "bs": int,
        "ax": int,
        "ap": float,
        "as": int,
        "c": NotRequired[int],
        "i": NotRequired[list[int]],
        "t": int,
        "q": int,
        "z": int,
    },
)
StockQuoteEvent.__doc__ = """The national best bid and offer for a stock (``Q``, stocks cluster).

:ivar sym: the ticker.
:ivar bx: the bid exchange ID.
:ivar bp: the bid price.
:ivar bs: the bid size, in round lots.
:ivar ax: the ask exchange ID.
:ivar ap: the ask price.
:ivar as: the ask size, in round lots (``as`` is a Python keyword: use ``quote["as"]``).
:ivar c: the quote condition (optional).
:ivar i: the indicators (optional).
:ivar t: the SIP timestamp.
:ivar q: the sequence number.
:ivar z: the tape (1 = NYSE, 2 = AMEX, 3 = Nasdaq).
"""


class _StockAggregate(TypedDict):
    sym: str
    v: int
    av: int
    op: float
    vw: float
    o: float
    c: float
    h: float
    l: float  # noqa: E741 - the wire's own name
    a: float
    z: int
    s: int
    e: int
    otc: NotRequired[bool]


_STOCK_AGGREGATE_FIELDS = """
:ivar sym: the ticker.
:ivar v: the volume in this window.
:ivar av: today's accumulated volume.
:ivar op: today's official opening price.
:ivar vw: this window's volume-weighted average price.
:ivar o: the window's opening price.
:ivar c: the window's closing price.
:ivar h: the window's highest price.
:ivar l: the window's lowest price.
:ivar a: today's volume-weighted average price.
:ivar z: the average trade size in this window.
:ivar s: the window's start.
:ivar e: the window's end.
:ivar otc: present and true for OTC tickers only (optional).
"""


class StockSecondAggregateEvent(_StockAggregate):
    ev: Literal["A"]


class StockMinuteAggregateEvent(_StockAggregate):
    ev: Literal["AM"]


StockSecondAggregateEvent.__doc__ = (
    "A one-second OHLCV bar for a stock (``A``, stocks cluster).\n" + _STOCK_AGGREGATE_FIELDS
)
StockMinuteAggregateEvent.__doc__ = (
    "A one-minute OHLCV bar for a stock (``AM``, stocks cluster).\n" + _STOCK_AGGREGATE_FIELDS
)


class StockLimitUpLimitDownEvent(TypedDict):
    """Limit up / limit down price bands for a stock (``LULD``, stocks cluster).

    :ivar T: the ticker.
    :ivar h: the upper band.
    :ivar l: the lower band.
    :ivar i: the indicators.
    :ivar z: the tape.
    :ivar t: the timestamp.
    :ivar q: the sequence number.
    """

    ev: Literal["LULD"]
    T: str
    h: float
    l: float  # noqa: E741 - the wire's own name
    i: list[int]
    z: int
    t: int
    q: int


class StockImbalanceEvent(TypedDict):
    """An auction imbalance (``NOI``, stocks cluster).

    :ivar T: the ticker.
    :ivar t: the timestamp.
    :ivar at: when the auction is planned: hour * 100 + minutes, US Eastern.
    :ivar a: the auction type (``O``, ``M``, ``H``, ``C``, ``P``, ...).
    :ivar i: the symbol sequence.
    :ivar x: the exchange ID.
    :ivar o: the imbalance quantity.
    :ivar p: the paired quantity.
    :ivar b: the book clearing price.
    """

    ev: Literal["NOI"]
    T: str
    t: int
    at: int
    a: str
    i: int
    x: int
    o: int
    p: int
    b: float


# -- options -----------------------------------------------------------------------------


class OptionTradeEvent(TypedDict):
    """A trade on an option contract (``T``, options cluster).

    :ivar sym: the contract, with its ``O:`` prefix.
    :ivar x: the exchange ID.
    :ivar p: the price.
    :ivar s: the size, in contracts.
    :ivar c: the trade conditions.
    :ivar t: the timestamp.
    :ivar q: the sequence number.
    """

    ev: Literal["T"]
    sym: str
    x: int
    p: float
    s: int
    c: list[int]
    t: int
    q: int


OptionQuoteEvent = TypedDict(
    "OptionQuoteEvent",
    {
        "ev": Literal["Q"],
        "sym": str,
        "bx": int,
        "ax": int,
        "bp": float,
        "ap": float,
        "bs": int,
        "as": int,
        "t": int,
        "q": int,
    },
)
OptionQuoteEvent.__doc__ = """Best bid and offer for an option contract (``Q``, options cluster).

:ivar sym: the contract, with its ``O:`` prefix.
:ivar bx: the bid exchange ID.
:ivar ax: the ask exchange ID.
:ivar bp: the bid price.
:ivar ap: the ask price.
:ivar bs: the bid size.
:ivar as: the ask size (``as`` is a Python keyword: use ``quote["as"]``).
:ivar t: the timestamp.
:ivar q: the sequence number.
"""


class _OptionAggregate(TypedDict):
    sym: str
    v: int
    av: int
    op: float
    vw: float
    o: float
    c: float
    h: float
    l: float  # noqa: E741 - the wire's own name
    a: float
    z: int
    s: int
    e: int


class OptionSecondAggregateEvent(_OptionAggregate):
    ev: Literal["A"]


class OptionMinuteAggregateEvent(_OptionAggregate):
    ev: Literal["AM"]


_OPTION_AGGREGATE_FIELDS = _STOCK_AGGREGATE_FIELDS.replace("the ticker", "the contract").replace(
    ":ivar otc: present and true for OTC tickers only (optional).\n", ""
)
OptionSecondAggregateEvent.__doc__ = (
    "A one-second OHLCV bar for an option contract (``A``, options cluster).\n"
    + _OPTION_AGGREGATE_FIELDS
)
OptionMinuteAggregateEvent.__doc__ = (
    "A one-minute OHLCV bar for an option contract (``AM``, options cluster).\n"
    + _OPTION_AGGREGATE_FIELDS
)


# -- forex -------------------------------------------------------------------------------


class ForexQuoteEvent(TypedDict):
    """A quote for a currency pair (``C``, forex cluster).

    :ivar p: the pair, e.g. ``EUR/USD``.
    :ivar x: the exchange ID.
    :ivar a: the ask price.
    :ivar b: the bid price.
    :ivar t: the timestamp.
    """

    ev: Literal["C"]
    p: str
    x: int
    a: float
    b: float
    t: int


class _ForexAggregate(TypedDict):
    pair: str
    o: float
    c: float
    h: float
    l: float  # noqa: E741 - the wire's own name
    v: int
    s: int
    e: int


class ForexMinuteAggregateEvent(_ForexAggregate):
    ev: Literal["CA"]


class ForexSecondAggregateEvent(_ForexAggregate):
    ev: Literal["CAS"]


_FOREX_AGGREGATE_FIELDS = """
:ivar pair: the pair, e.g. ``EUR/USD``.
:ivar o: the window's opening price.
:ivar c: the window's closing price.
:ivar h: the window's highest price.
:ivar l: the window's lowest price.
:ivar v: the number of trades in the window.
:ivar s: the window's start.
:ivar e: the window's end.
"""
ForexMinuteAggregateEvent.__doc__ = (
    "A one-minute OHLC bar for a currency pair (``CA``, forex cluster).\n" + _FOREX_AGGREGATE_FIELDS
)
ForexSecondAggregateEvent.__doc__ = (
    "A one-second OHLC bar for a currency pair (``CAS``, forex cluster).\n"
    + _FOREX_AGGREGATE_FIELDS
)


# -- crypto ------------------------------------------------------------------------------


class CryptoTradeEvent(TypedDict):
    """A trade on a crypto pair (``XT``, crypto cluster).

    :ivar pair: the pair, e.g. ``BTC-USD``.
    :ivar p: the price.
    :ivar t: the timestamp.
    :ivar s: the size.
    :ivar c: the conditions (0 or empty: none, 1: sell side, 2: buy side).
    :ivar i: the trade ID (optional).
    :ivar x: the crypto exchange ID.
    :ivar r: when the provider received the trade.
    """

    ev: Literal["XT"]
    pair: str
    p: float
    t: int
    s: float
    c: list[int]
    i: NotRequired[str]
    x: int
    r: int


CryptoQuoteEvent = TypedDict(
    "CryptoQuoteEvent",
    {
        "ev": Literal["XQ"],
        "pair": str,
        "bp": float,
        "bs": float,
        "ap": float,
        "as": float,
        "t": int,
        "x": int,
        "r": int,
    },
)
CryptoQuoteEvent.__doc__ = """The best bid and offer for a crypto pair (``XQ``, crypto cluster).

:ivar pair: the pair, e.g. ``BTC-USD``.
:ivar bp: the bid price.
:ivar bs: the bid size.
:ivar ap: the ask price.
:ivar as: the ask size (``as`` is a Python keyword: use ``quote["as"]``).
:ivar t: the timestamp.
:ivar x: the crypto exchange ID.
:ivar r: when the provider received the quote.
"""


class CryptoLevel2BookEvent(TypedDict):
    """Level 2 order book for a crypto pair (``XL2``, crypto cluster).

    :ivar pair: the pair, e.g. ``BTC-USD``.
    :ivar b: bids as ``[price, size]`` pairs, best first (up to 100 levels).
    :ivar a: asks as ``[price, size]`` pairs, best first (up to 100 levels).
    :ivar t: the timestamp.
    :ivar x: the crypto exchange ID.
    :ivar r: when the provider received the update.
    """

    ev: Literal["XL2"]
    pair: str
    b: list[list[float]]
    a: list[list[float]]
    t: int
    x: int
    r: int


class _CryptoAggregate(TypedDict):
    pair: str
    o: float
    ox: NotRequired[int]
    h: float
    l: float  # noqa: E741 - the wire's own name
    c: float
    cx: NotRequired[int]
    v: float
    vw: float
    z: int
    s: int
    e: int


class CryptoMinuteAggregateEvent(_CryptoAggregate):
    ev: Literal["XA"]


class CryptoSecondAggregateEvent(_CryptoAggregate):
    ev: Literal["XAS"]


_CRYPTO_AGGREGATE_FIELDS = """
:ivar pair: the pair, e.g. ``BTC-USD``.
:ivar o: the window's opening price.
:ivar ox: the exchange of the opening trade (optional).
:ivar h: the window's highest price.
:ivar l: the window's lowest price.
:ivar c: the window's closing price.
:ivar cx: the exchange of the closing trade (optional).
:ivar v: the volume in the window.
:ivar vw: the window's volume-weighted average price.
:ivar z: the average trade size in the window.
:ivar s: the window's start.
:ivar e: the window's end.
"""
CryptoMinuteAggregateEvent.__doc__ = (
    "A one-minute OHLCV bar for a crypto pair (``XA``, crypto cluster).\n"
    + _CRYPTO_AGGREGATE_FIELDS
)
CryptoSecondAggregateEvent.__doc__ = (
    "A one-second OHLCV bar for a crypto pair (``XAS``, crypto cluster).\n"
    + _CRYPTO_AGGREGATE_FIELDS
)


# -- indices -----------------------------------------------------------------------------


class _IndexAggregate(TypedDict):
    sym: str
    op: float
    o: float
    c: float
    h: float
    l: float  # noqa: E741 - the wire's own name
    s: int
    e: int


class IndicesSecondAggregateEvent(_IndexAggregate):
    ev: Literal["A"]


class IndicesMinuteAggregateEvent(_IndexAggregate):
    ev: Literal["AM"]


_INDEX_AGGREGATE_FIELDS = """
:ivar sym: the index, with its ``I:`` prefix.
:ivar op: today's official opening value.
:ivar o: the window's opening value.
:ivar c: the window's closing value.
:ivar h: the window's highest value.
:ivar l: the window's lowest value.
:ivar s: the window's start.
:ivar e: the window's end.
"""
IndicesSecondAggregateEvent.__doc__ = (
    "A one-second OHLC bar for an index (``A``, indices cluster).\n" + _INDEX_AGGREGATE_FIELDS
)
IndicesMinuteAggregateEvent.__doc__ = (
    "A one-minute OHLC bar for an index (``AM``, indices cluster).\n" + _INDEX_AGGREGATE_FIELDS
)


class IndexValueEvent(TypedDict):
    """The value of an index as it is computed (``V``, indices cluster).

    :ivar T: the index, with its ``I:`` prefix.
    :ivar val: the value.
    :ivar t: the timestamp.
    """

    ev: Literal["V"]
    T: str
    val: float
    t: int


# -- business and launchpad feeds ----------------------------------------------------------


class FairMarketValueEvent(TypedDict):
    """The provider's fair market value of a security (``FMV``, business plans).

    :ivar sym: the symbol, written as its cluster writes it.
    :ivar fmv: the fair market value.
    :ivar t: the timestamp (the specification calls it nanoseconds).
    """

    ev: Literal["FMV"]
    sym: str
    fmv: float
    t: int


class LaunchpadValueEvent(TypedDict):
    """The current value of a security on the launchpad feed (``LV``).

    :ivar sym: the symbol.
    :ivar val: the value.
    :ivar t: the timestamp (the specification calls it nanoseconds).
    """

    ev: Literal["LV"]
    sym: str
    val: float
    t: int


# -- unions, lookup and handlers -----------------------------------------------------------

StocksEvent = (
    StockTradeEvent
    | StockQuoteEvent
    | StockSecondAggregateEvent
    | StockMinuteAggregateEvent
    | StockLimitUpLimitDownEvent
    | StockImbalanceEvent
    | FairMarketValueEvent
    | LaunchpadValueEvent
    | StatusEvent
)
OptionsEvent = (
    OptionTradeEvent
    | OptionQuoteEvent
    | OptionSecondAggregateEvent
    | OptionMinuteAggregateEvent
    | FairMarketValueEvent
    | LaunchpadValueEvent
    | StatusEvent
)
ForexEvent = (
    ForexQuoteEvent
    | ForexMinuteAggregateEvent
    | ForexSecondAggregateEvent
    | FairMarketValueEvent
    | LaunchpadValueEvent
    | StatusEvent
)
CryptoEvent = (
    CryptoTradeEvent
    | CryptoQuoteEvent
    | CryptoLevel2BookEvent
    | CryptoMinuteAggregateEvent
    | CryptoSecondAggregateEvent
    | FairMarketValueEvent
    | LaunchpadValueEvent
    | StatusEvent
)
IndicesEvent = (
    IndicesSecondAggregateEvent | IndicesMinuteAggregateEvent | IndexValueEvent | StatusEvent
)

#: Event type by cluster name and ``ev`` code, e.g. ``EVENT_TYPES["stocks"]["T"]``.
EVENT_TYPES: Mapping[str, Mapping[str, type]] = {
    "stocks": {
        "T": StockTradeEvent,
        "Q": StockQuoteEvent,
        "A": StockSecondAggregateEvent,
        "AM": StockMinuteAggregateEvent,
        "LULD": StockLimitUpLimitDownEvent,
        "NOI": StockImbalanceEvent,
        "FMV": FairMarketValueEvent,
        "LV": LaunchpadValueEvent,
        "status": StatusEvent,
    },
    "options": {
        "T": OptionTradeEvent,
        "Q": OptionQuoteEvent,
        "A": OptionSecondAggregateEvent,
        "AM": OptionMinuteAggregateEvent,
        "FMV": FairMarketValueEvent,
        "LV": LaunchpadValueEvent,
        "status": StatusEvent,
    },
    "forex": {
        "C": ForexQuoteEvent,
        "CA": ForexMinuteAggregateEvent,
        "CAS": ForexSecondAggregateEvent,
        "FMV": FairMarketValueEvent,
        "LV": LaunchpadValueEvent,
        "status": StatusEvent,
    },
    "crypto": {
        "XT": CryptoTradeEvent,
        "XQ": CryptoQuoteEvent,
        "XL2": CryptoLevel2BookEvent,
        "XA": CryptoMinuteAggregateEvent,
        "XAS": CryptoSecondAggregateEvent,
        "FMV": FairMarketValueEvent,
        "LV": LaunchpadValueEvent,
        "status": StatusEvent,
    },
    "indices": {
        "A": IndicesSecondAggregateEvent,
        "AM": IndicesMinuteAggregateEvent,
        "V": IndexValueEvent,
        "status": StatusEvent,
    },
}

E = TypeVar("E")


def is_event(event: Mapping[str, Any], kind: type[E]) -> TypeGuard[E]:
    """True when ``event`` has the ``ev`` code of ``kind``; narrows it for the type checker.

    Only the code is compared (events stay unchecked dicts)::

        def on_any(event: dict) -> None:
            if is_event(event, StockTradeEvent):
                print(event["p"])  # the checker knows this is a trade
    """
    return event.get("ev") == _CODE_OF[kind]


_CODE_OF: dict[type, str] = {
    kind: code for by_code in EVENT_TYPES.values() for code, kind in by_code.items()
}

#: A handler for events of type ``E``: typed against ``E``, or against a plain dict.
# Union (not |): on Python 3.10 a | of Callable aliases cannot be subscripted by E.
EventHandler = Union[Callable[[E], object], Callable[[dict[str, Any]], object]]  # noqa: UP007

__all__ = [
    "EVENT_TYPES",
    "CryptoEvent",
    "CryptoLevel2BookEvent",
    "CryptoMinuteAggregateEvent",
    "CryptoQuoteEvent",
    "CryptoSecondAggregateEvent",
    "CryptoTradeEvent",
    "EventHandler",
    "FairMarketValueEvent",
    "ForexEvent",
    "ForexMinuteAggregateEvent",
    "ForexQuoteEvent",
    "ForexSecondAggregateEvent",
    "IndexValueEvent",
    "IndicesEvent",
    "IndicesMinuteAggregateEvent",
    "IndicesSecondAggregateEvent",
    "LaunchpadValueEvent",
    "OptionMinuteAggregateEvent",
    "OptionQuoteEvent",
    "OptionSecondAggregateEvent",
    "OptionTradeEvent",
    "OptionsEvent",
    "StatusEvent",
    "StockImbalanceEvent",
    "StockLimitUpLimitDownEvent",
    "StockMinuteAggregateEvent",
    "StockQuoteEvent",
    "StockSecondAggregateEvent",
    "StockTradeEvent",
    "StocksEvent",
    "is_event",
]
